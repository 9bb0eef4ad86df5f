"""What a DICOM object is, decided once from its header, for every door (window, catalog, info, infer).

A viewer that guesses from the pixels alone shows a radiograph as a one-slice volume with invented
orientation letters, an ultrasound cine as a 3-D block and a segmentation as a grey image. The SOP
class says what the object is; the photometric interpretation says whether it is colour; the geometry
(ImagePositionPatient and ImageOrientationPatient, or their functional groups) says whether its frames
have a place in the patient and can be stacked and reformatted; and the timing attributes say whether
its frames are moments of one plane.
"""

from __future__ import annotations

import enum

from pydicom.dataset import Dataset
from pydicom.uid import UID

SEGMENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RT_STRUCTURE_SET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SLIDE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
#: Structured reports (Basic Text, Enhanced, Comprehensive, Comprehensive 3D, Key Object Selection,
#: Mammography CAD, ...) all live under this branch of the SOP class tree.
SR_SOP_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
#: Multi-frame classes whose frames are moments of one plane: US, XA, XRF (and their enhanced forms),
#: video endoscopy, microscopy and photography.
CINE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image (retired)
        "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image
        "1.2.840.10008.5.1.4.1.1.12.1.1",  # Enhanced XA Image
        "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image
        "1.2.840.10008.5.1.4.1.1.12.2.1",  # Enhanced XRF Image
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
    }
)
#: Modalities whose images are projections or views of an unknown plane: never stacked or reformatted,
#: even when a header carries a stray ImagePositionPatient.
PROJECTION_MODALITIES = frozenset(
    {"CR", "DX", "MG", "IO", "PX", "XA", "RF", "US", "ES", "XC", "GM", "SM", "OP", "DG", "RG", "BMD", "TG"}
)
COLOUR_PHOTOMETRICS = frozenset(
    {"RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"}
)
#: Attributes that give a multi-frame object a frame rate (PS3.3 C.7.6.5, C.8.5.6).
TIMING_KEYWORDS = ("FrameTime", "FrameTimeVector", "CineRate", "RecommendedDisplayFrameRate")


class DicomKind(enum.Enum):
    VOLUME = "volume"
    IMAGE = "image"
    COLOUR_IMAGE = "colour image"
    CINE = "cine"
    SEGMENTATION = "segmentation"
    RT_STRUCTURE_SET = "rt structure set"
    STRUCTURED_REPORT = "structured report"
    SLIDE = "slide"
    NOT_AN_IMAGE = "not an image"

    @property
    def shows_pixels(self) -> bool:
        """Whether the object's own pixels are what a user looks at (the image kinds)."""
        return self in PIXEL_KINDS

    @property
    def order(self) -> int:
        """Where the kind comes in a list for a person to choose from: images before what refers to them."""
        return list(DicomKind).index(self)


PIXEL_KINDS = frozenset({DicomKind.VOLUME, DicomKind.IMAGE, DicomKind.COLOUR_IMAGE, DicomKind.CINE})


def sop_class_name(header: Dataset) -> str:
    """The SOP class as people know it ("RT Plan Storage"), or its UID when pydicom does not know it."""
    uid = str(header.get("SOPClassUID", "") or "")
    if not uid:
        return "DICOM object without a SOP class"
    name = UID(uid).name
    return name if name and name != uid else f"object of unknown SOP class {uid}"


def is_colour(header: Dataset) -> bool:
    return str(header.get("PhotometricInterpretation", "")).strip().upper() in COLOUR_PHOTOMETRICS


def frame_count(header: Dataset) -> int:
    """NumberOfFrames as a number, 1 when absent or unreadable (damage is reported by the pixel reader)."""
    try:
        return max(1, int(header.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def has_patient_geometry(header: Dataset) -> bool:
    """Whether the file places its frames in the patient (classic attributes or functional groups)."""
    if "ImagePositionPatient" in header and "ImageOrientationPatient" in header:
        return True
    shared = list(header.get("SharedFunctionalGroupsSequence") or [])
    groups = shared + list(header.get("PerFrameFunctionalGroupsSequence") or [])[:1]
    has_position = any("PlanePositionSequence" in group for group in groups)
    has_orientation = any("PlaneOrientationSequence" in group for group in groups)
    return has_position and has_orientation


def is_timed(header: Dataset) -> bool:
    return any(keyword in header for keyword in TIMING_KEYWORDS)


def file_kind(header: Dataset) -> DicomKind:
    """What one DICOM object is, from its header alone (no pixel data is read)."""
    sop = str(header.get("SOPClassUID", "") or "")
    if sop == SLIDE_SOP_CLASS:
        return DicomKind.SLIDE
    if sop == SEGMENTATION_SOP_CLASS:
        return DicomKind.SEGMENTATION
    if sop == RT_STRUCTURE_SET_SOP_CLASS:
        return DicomKind.RT_STRUCTURE_SET
    if sop.startswith(SR_SOP_CLASS_PREFIX):
        return DicomKind.STRUCTURED_REPORT
    if "Rows" not in header or "Columns" not in header:
        return DicomKind.NOT_AN_IMAGE
    modality = str(header.get("Modality", "")).strip().upper()
    frames = frame_count(header)
    if frames > 1 and (sop in CINE_SOP_CLASSES or modality in PROJECTION_MODALITIES or is_timed(header)):
        return DicomKind.CINE
    if has_patient_geometry(header) and modality not in PROJECTION_MODALITIES:
        return DicomKind.VOLUME
    return DicomKind.COLOUR_IMAGE if is_colour(header) else DicomKind.IMAGE


def not_an_image_reason(header: Dataset) -> str:
    """Why a DICOM object that holds no image cannot be shown, in words that name what it is."""
    name = sop_class_name(header)
    if "Image" in name:  # an image's header without its pixels (DICOMDIR test sets, headers-only exports)
        return f"a DICOM {name} object without pixel data (no Rows and Columns): there is nothing to display"
    return f"a DICOM {name}, not an image: there is nothing to display"
