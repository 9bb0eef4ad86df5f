"""De-identify DICOM datasets by the basic profile, with one new UID per old UID across an export.

The profile table (``medviewer.deid.profile``) is applied first; then, because no table lists every
attribute a modality or a site may fill with a name, every remaining person name, free text, date and
time is replaced by a dummy (not emptied: many are Type 1 in some object, and the export must stay valid)
and every UID that is not a standard one (SOP classes, transfer syntaxes) is replaced. Code meanings become
the standard's own words for the code (or the code itself), segment labels "Segment <n>", free Code String
values outside the standard's defined terms are removed, and text segments inside compressed frames are cut
out (``medviewer.deid.codestream``). Private tags, curves, overlays and values of unknown VR are removed, and
so are dimensions that index frames by a private tag; an ICC profile keeps its colours but not its text
(``medviewer.deid.icc``). All of it recursively, inside every sequence item.
"""

from __future__ import annotations

import functools
from typing import cast

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, generate_uid

from medviewer.deid import codestream, icc, profile


class UidMap:
    """Old UID -> new random UID (2.25 form), shared by every file of one export so references resolve."""

    def __init__(self) -> None:
        self._new: dict[str, str] = {}

    def __call__(self, old: str) -> str:
        old = str(old).strip("\x00 ")
        if not old:
            return old
        if old not in self._new:
            self._new[old] = generate_uid(prefix=None)
        return self._new[old]


def is_standard_uid(value: str) -> bool:
    """SOP classes, transfer syntaxes, coding schemes: UIDs the standard defines, which identify nobody."""
    return UID(str(value)).name != str(value)


def deidentify(ds: Dataset, uids: UidMap) -> None:
    """Apply the profile to ``ds`` and its file meta in place, and record that it was applied."""
    ds.preamble = b"\0" * 128  # pydicom writes the input's preamble back; it can hold text or a TIFF header
    _strip_frame_text(ds)
    _drop_private_dimensions(ds)
    _clean(ds, uids, top_level=True)
    meta = ds.get("file_meta")
    if meta is not None:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        for keyword in (
            "ImplementationVersionName",
            "SourceApplicationEntityTitle",
            "SendingApplicationEntityTitle",
            "ReceivingApplicationEntityTitle",
            "PrivateInformationCreatorUID",
            "PrivateInformation",
        ):
            if keyword in meta:
                delattr(meta, keyword)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = profile.DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = profile.BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"


def _clean(ds: Dataset, uids: UidMap, top_level: bool = False) -> None:
    """Every element of ``ds`` and of its sequences' items; then the code meaning and segment names that
    ``ds`` itself holds (enhanced objects from some scanners carry a code meaning outside any sequence)."""
    for tag in list(ds.keys()):
        if tag.is_private or any(low <= tag.group <= high for low, high in profile.REMOVED_GROUP_RANGES):
            del ds[tag]
            continue
        element = ds[tag]
        action = profile.ACTIONS.get(int(tag))
        if action == profile.X or element.VR == "UN":  # UN: a value whose meaning (and content) is unknown
            del ds[tag]
        elif element.VR in profile.BINARY_VRS:
            _clean_binary(ds, int(tag), top_level)
        elif int(tag) in profile.REMOVED_SEQUENCES:
            del ds[tag]
        elif element.VR == "SQ":
            if action == profile.Z:
                element.value = Sequence()
            for item in element.value:
                _clean(item, uids)
        elif action == profile.Z:
            element.value = ""
        elif action == profile.D:
            element.value = profile.DUMMIES.get(element.VR, profile.DEFAULT_DUMMY)
        elif element.VR == "UI":
            _replace_uids(element, uids, force=action == profile.U)
        elif element.VR == "UR":
            del ds[tag]  # a dummy is not a URI; links lead back to systems that know the patient
        elif int(tag) in profile.FREE_CODE_STRINGS:
            if str(element.value).strip().upper() not in profile.FREE_CODE_STRINGS[int(tag)]:
                del ds[tag]
        elif int(tag) in profile.LABEL_CODE_STRINGS and element.value not in (None, ""):
            element.value = profile.DEFAULT_DUMMY
        elif (element.VR in profile.TEXT_VRS and int(tag) not in profile.SAFE_TEXT) or element.VR in profile.DATE_VRS:
            if element.value not in (None, "") and int(tag) not in (CODE_MEANING, SEGMENT_LABEL, ALGORITHM_NAME):
                element.value = profile.DUMMIES.get(element.VR, profile.DEFAULT_DUMMY)
    _rewrite_code_meaning(ds)
    _rewrite_segment_names(ds)


def _clean_binary(ds: Dataset, tag: int, top_level: bool) -> None:
    """Embedded documents, icons and other blobs can carry names in any form and go; pixel data, LUTs and
    coordinates stay, and an ICC profile stays with its text blanked (removed if it cannot be parsed)."""
    if top_level and tag in profile.KEPT_BINARY:
        return
    if tag not in profile.KEPT_NESTED_BINARY:
        del ds[tag]
    elif tag == profile.ICC_PROFILE:
        try:
            ds[tag].value = icc.blank_text(bytes(ds[tag].value))
        except icc.IccError:
            del ds[tag]


CODE_MEANING = profile.tag_of("CodeMeaning")
SEGMENT_LABEL = profile.tag_of("SegmentLabel")
ALGORITHM_NAME = profile.tag_of("SegmentAlgorithmName")


def _rewrite_code_meaning(item: Dataset) -> None:
    """A code's meaning is whatever its writer typed, even for a standard code: it becomes the standard's
    own meaning where pydicom knows the code, else the code itself ("X1 (99LOCAL)"). Never emptied: it is
    Type 1 wherever a code is."""
    if "CodeMeaning" not in item:
        return
    scheme = str(item.get("CodingSchemeDesignator", "")).strip()
    value = str(item.get("CodeValue", "") or item.get("LongCodeValue", "") or item.get("URNCodeValue", "")).strip()
    known = _standard_meanings().get((scheme, value))
    item.CodeMeaning = known or (f"{value} ({scheme})" if value or scheme else profile.DEFAULT_DUMMY)[:64]


@functools.cache
def _standard_meanings() -> dict[tuple[str, str], str]:
    """(scheme, code value) -> meaning, from pydicom's copy of the standard's code tables."""
    from pydicom.sr._concepts_dict import concepts

    # pydicom builds the table from an empty literal, so its type says nothing of the nesting.
    by_scheme = cast(dict[str, dict[str, dict[str, tuple[str, list[int]]]]], concepts)
    return {
        (scheme, value): meaning
        for scheme, by_name in by_scheme.items()
        for by_value in by_name.values()
        for value, (meaning, _) in by_value.items()
    }


def _rewrite_segment_names(item: Dataset) -> None:
    """A segment's label and algorithm name (Type 1 and 1C) are what a person typed: "Segment <n>" and a
    dummy keep the SEG valid and say nothing of whom it was drawn on."""
    if "SegmentLabel" in item:
        item.SegmentLabel = f"Segment {item.get('SegmentNumber', '')}".strip()
    if "SegmentAlgorithmName" in item:
        item.SegmentAlgorithmName = profile.DEFAULT_DUMMY


def _strip_frame_text(ds: Dataset) -> None:
    """Cut comment and application segments out of every compressed frame (see ``codestream``)."""
    syntax = str(getattr(ds.get("file_meta"), "TransferSyntaxUID", ""))
    if "PixelData" not in ds or syntax not in codestream.JPEG_SYNTAXES | codestream.J2K_SYNTAXES:
        return
    frames = int(ds.get("NumberOfFrames") or 1)
    cleaned = [codestream.strip_text(frame, syntax) for frame in generate_frames(ds.PixelData, number_of_frames=frames)]
    ds.PixelData = encapsulate(cleaned)


def _drop_private_dimensions(ds: Dataset) -> None:
    """Private tags are removed, so a dimension that indexes frames by one (Philips does) would point at
    nothing: its entry leaves the Dimension Index Sequence and its position leaves every frame's Dimension
    Index Values, which keeps the remaining dimensions consistent. Left alone when every dimension is
    private, since the sequence is Type 1."""
    dimensions = ds.get("DimensionIndexSequence")
    if not dimensions:
        return
    kept = [i for i, item in enumerate(dimensions) if not _points_at_private(item)]
    if not kept or len(kept) == len(dimensions):
        return
    ds.DimensionIndexSequence = Sequence([dimensions[i] for i in kept])
    for group in (ds.get("SharedFunctionalGroupsSequence") or [], ds.get("PerFrameFunctionalGroupsSequence") or []):
        for frame in group:
            for content in frame.get("FrameContentSequence") or []:
                if "DimensionIndexValues" in content:
                    values = content.DimensionIndexValues
                    values = list(values) if isinstance(values, (list, MultiValue)) else [values]
                    content.DimensionIndexValues = [values[i] for i in kept if i < len(values)]


def _points_at_private(item: Dataset) -> bool:
    pointers = (item.get("DimensionIndexPointer"), item.get("FunctionalGroupPointer"))
    return any(pointer is not None and int(pointer) >> 16 & 1 for pointer in pointers)


def _replace_uids(element: DataElement, uids: UidMap, force: bool) -> None:
    def new(value: str) -> str:
        return uids(value) if force or not is_standard_uid(value) else value

    value = element.value
    if isinstance(value, (list, MultiValue)):
        element.value = [new(v) for v in value]
    elif value:
        element.value = new(value)


def burned_in_reason(ds: Dataset) -> str | None:
    """Why the pixels may show identifiers, or None: flagged as such, or an ultrasound or secondary
    capture (screenshots, scanned forms) that does not say it is free of burned-in text."""
    flag = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if flag == "YES":
        return "marked as having burned-in annotation"
    if flag == "NO":
        return None
    sop_class = str(ds.get("SOPClassUID", ""))
    image_type = {str(v).upper() for v in (ds.get("ImageType") or [])}
    if image_type & {"LABEL", "OVERVIEW"} or str(ds.get("SpecimenLabelInImage", "")).upper() == "YES":
        return "a slide label or overview photograph, which can show the specimen label"
    if str(ds.get("Modality", "")).upper() == "US" or sop_class in profile.ULTRASOUND_CLASSES:
        return "an ultrasound image that does not say it is free of burned-in annotation"
    if sop_class in profile.SECONDARY_CAPTURE_CLASSES:
        return "a secondary capture that does not say it is free of burned-in annotation"
    return None
