"""De-identify DICOM datasets by the basic profile, with one new UID per old UID across an export.

The profile table (``medviewer.deid.profile``) is applied first; then, because no table lists every
attribute a modality or a site may fill with a name, every remaining person name, free text, date and
time is emptied and every UID that is not a standard one (SOP classes, transfer syntaxes) is replaced.
Private tags, curves, overlays and values of unknown VR are removed. All of it recursively, inside every sequence item.
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, generate_uid

from medviewer.deid import profile


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
    for tag in list(ds.keys()):
        if tag.is_private or any(low <= tag.group <= high for low, high in profile.REMOVED_GROUP_RANGES):
            del ds[tag]
            continue
        element = ds[tag]
        action = profile.ACTIONS.get(int(tag))
        if action == profile.X or element.VR == "UN":  # UN: a value whose meaning (and content) is unknown
            del ds[tag]
        elif element.VR in profile.BINARY_VRS and not (top_level and int(tag) in profile.KEPT_BINARY):
            del ds[tag]  # embedded documents, icons and other binary blobs can carry names in any form
        elif int(tag) in profile.REMOVED_SEQUENCES:
            del ds[tag]
        elif element.VR == "SQ":
            if action == profile.Z:
                element.value = Sequence()
            for item in element.value:
                _clean(item, uids)
                _drop_private_code_meaning(item)
        elif action == profile.Z:
            element.value = ""
        elif action == profile.D:
            element.value = profile.DUMMIES.get(element.VR, profile.DEFAULT_DUMMY)
        elif element.VR == "UI":
            _replace_uids(element, uids, force=action == profile.U)
        elif element.VR in profile.TEXT_VRS and int(tag) not in profile.SAFE_TEXT:
            element.value = ""
        elif element.VR in profile.DATE_VRS:
            element.value = ""


def _drop_private_code_meaning(item: Dataset) -> None:
    """A code's meaning is safe text only when a standard scheme defines it; a local scheme's can be anything."""
    scheme = str(item.get("CodingSchemeDesignator", "")).strip()
    if "CodeMeaning" in item and scheme not in profile.STANDARD_CODING_SCHEMES:
        item.CodeMeaning = ""


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
