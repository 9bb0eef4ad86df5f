"""Siemens MOSAIC images: one DICOM frame holding a whole volume's slices as tiles.

Siemens fMRI and diffusion series store each volume as a grid of slices in one large image, with the
slice count and true slice geometry only in the private CSA header. Shown as written, it is one slice
of tiled brains with a scale bar that is wrong by the tiling factor. nibabel's DICOM wrapper, the
reference implementation used by dcm2niix's test suite and by nipy, unpacks the tiles and works out
the affine from the CSA header; it is used as is rather than re-deriving that geometry here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from medviewer.core.errors import input_error
from medviewer.io.dicom_series import DicomFile, read_dataset


@dataclass
class Mosaic:
    """A mosaic unpacked: (z, y, x) voxels and their geometry in LPS, as ``Volume`` holds them."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray


def is_mosaic(header: Dataset) -> bool:
    image_type = [str(v).upper() for v in (header.get("ImageType") or [])]
    return "MOSAIC" in image_type and "SIEMENS" in str(header.get("Manufacturer", "")).upper()


def read_mosaic(dicom_file: DicomFile) -> tuple[Mosaic | None, str | None]:
    """The unpacked volume, or None and why not (the file is then shown as the plain image it is)."""
    dataset = read_dataset(dicom_file.path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental on import and use
            from nibabel.nicom import dicomwrappers

            # nibabel leaves its DICOM wrappers unannotated
            wrapper = dicomwrappers.wrapper_from_data(dataset)  # type: ignore[no-untyped-call]
            if not isinstance(wrapper, dicomwrappers.MosaicWrapper):
                return None, _plain("its Siemens CSA header does not describe a mosaic")
            data = np.asarray(wrapper.get_data())  # type: ignore[no-untyped-call]
            affine = np.asarray(wrapper.affine, dtype=float)
    except BaseException as exc:  # nibabel raises many types for a damaged CSA header; decoders can panic
        if input_error(dicom_file.path, exc) is None:
            raise  # interrupts pass on
        return None, _plain(f"its Siemens CSA header is missing or damaged ({type(exc).__name__})")
    if data.ndim != 3 or not np.all(np.isfinite(affine)):
        return None, _plain("nibabel could not work out its slices")
    # nibabel's affine maps data indices (i, j, k) to LPS millimetres; a Volume is indexed (z, y, x) with
    # x = i, y = j, z = k, so its columns are the affine's columns in that order.
    columns = affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        return None, _plain("its CSA geometry gives a zero voxel size")
    return (
        Mosaic(
            # native byte order: big-endian files come out of nibabel as stored
            array=np.ascontiguousarray(data.transpose(2, 1, 0), dtype=data.dtype.newbyteorder("=")),
            spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
            origin=(float(affine[0, 3]), float(affine[1, 3]), float(affine[2, 3])),
            direction=columns / spacing,
        ),
        None,
    )


def _plain(reason: str) -> str:
    return f"a Siemens MOSAIC image, but {reason}: shown as the plain tiled image, whose slices are not separated"
