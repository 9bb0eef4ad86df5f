"""Writing a HU volume as a real CT Image Storage series, and as NIfTI, with deterministic UIDs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, CTImageStorage, ExplicitVRLittleEndian

from medviewer import __version__
from medviewer.core.patient import PatientInfo
from medviewer.demo.ct_phantom import CtGeometry

HU_OFFSET = 1024  # stored value = HU + 1024, RescaleIntercept -1024, as most scanners write


@dataclass(frozen=True)
class SeriesIdentity:
    patient: PatientInfo
    series_uid: str
    frame_of_reference_uid: str
    accession: str
    series_description: str


def deterministic_uid(*parts: object) -> str:
    """A 2.25-form UID (PS3.5 B.2) from a hash of ``parts``: the same seed always names the same objects.

    pydicom's ``generate_uid(prefix=None)`` ignores its entropy sources and uses a random UUID, so the
    128-bit integer is derived here instead.
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def write_ct_series(folder: Path, hu: np.ndarray, geometry: CtGeometry, identity: SeriesIdentity) -> list[Path]:
    """One file per slice, numbered from the head down as a scanner does (instance 1 is superior)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for instance, k in enumerate(range(hu.shape[0] - 1, -1, -1), start=1):
        path = folder / f"IM{instance:04d}.dcm"
        ct_slice_dataset(hu[k], geometry, k, identity, instance).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def ct_slice_dataset(hu: np.ndarray, geometry: CtGeometry, k: int, identity: SeriesIdentity, instance: int) -> Dataset:
    """Slice ``k`` of a phantom (``hu`` is that one slice) as a CT image at its own position."""
    ny, nx = hu.shape
    ox, oy, _ = geometry.origin
    sop_uid = deterministic_uid(identity.series_uid, "instance", instance)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    patient = identity.patient
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = "O"
    ds.StudyInstanceUID = patient.study_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
    ds.StudyDescription = patient.study_description
    ds.StudyID = "1"
    ds.AccessionNumber = identity.accession
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = identity.series_uid
    ds.SeriesNumber = 2
    ds.SeriesDescription = identity.series_description
    ds.Modality = "CT"
    ds.Manufacturer = "medviewer synthetic phantom"
    ds.SoftwareVersions = __version__
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{ox:.4f}", f"{oy:.4f}", f"{geometry.slice_z(k):.4f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SliceLocation = f"{geometry.slice_z(k):.4f}"
    ds.SliceThickness = f"{geometry.slice_mm:.4f}"
    ds.PixelSpacing = [f"{geometry.pixel_mm:.6f}", f"{geometry.pixel_mm:.6f}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = str(-HU_OFFSET)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.PixelData = (hu.astype(np.int32) + HU_OFFSET).astype("<i2").tobytes()
    return ds


def write_nifti(path: Path, hu: np.ndarray, geometry: CtGeometry) -> None:
    """The same voxels as NIfTI (RAS affine, as the format requires), qform and sform both set."""
    import nibabel as nib

    affine_lps = np.diag([geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm, 1.0])
    affine_lps[:3, 3] = geometry.origin
    affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps
    image = nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), affine_ras)
    image.set_qform(affine_ras, code=1)
    image.set_sform(affine_ras, code=1)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = b"medviewer synthetic chest CT phantom (HU)"
    nib.save(image, str(path))
