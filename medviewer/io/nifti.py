"""NIfTI-1/2 reading into the LPS patient frame.

NIfTI affines are in RAS; DICOM and medviewer use LPS, so the first two rows are negated. The file's
(i, j, k) array becomes (z, y, x) by transposition, and the affine's columns give spacing and
direction, so oblique sform/qform affines keep their true orientation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medviewer.core.errors import CorruptFileError, UnsupportedFileError
from medviewer.core.volume import Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: Path) -> Volume:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        image = nib.load(str(path), mmap=False)
    except ImageFileError as exc:
        raise UnsupportedFileError(path, "not a NIfTI file (its header is not NIfTI-1 or NIfTI-2)") from exc
    except (OSError, EOFError, ValueError) as exc:
        raise CorruptFileError(path, f"the NIfTI header cannot be read ({type(exc).__name__})") from exc
    warnings: list[str] = []
    try:
        if len(image.shape) == 4:
            warnings.append(f"the file holds {image.shape[3]} time points; showing the first")
            data = np.asarray(image.dataobj[..., 0])
        else:
            data = np.asarray(image.dataobj)
    except Exception as exc:  # gzip, zlib and nibabel raise varied types for damaged data
        raise CorruptFileError(path, f"the NIfTI voxel data is truncated or damaged ({type(exc).__name__})") from exc
    if data.ndim == 2:
        data = data[..., None]
    elif data.ndim != 3:
        raise UnsupportedFileError(path, f"{data.ndim}-D NIfTI data is not a volume")
    affine = RAS_TO_LPS @ image.affine
    linear = affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise CorruptFileError(path, "the NIfTI affine has a zero-length axis")
    return Volume(
        array=np.ascontiguousarray(data.transpose(2, 1, 0)),
        spacing=tuple(spacing),
        origin=tuple(affine[:3, 3]),
        direction=linear / spacing[None, :],
        warnings=warnings,
        metadata={"source": "nifti"},
    )
