"""Damaged and hostile copies of nibabel's real NIfTI files, opened through the door the window and
``medviewer info`` use: a typed error naming the file and what is wrong in its header, a warning when the
image can still be placed in millimetres, and a gzip stream inflated no further than its header declares."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from medviewer.cli import main
from medviewer.core.errors import CorruptFileError
from medviewer.io import open_volume
from tests.support.child_process import json_from_child
from tests.support.paths import nibabel_file

REPO = Path(__file__).resolve().parents[2]
#: Offsets of NIfTI-1 header fields.
DIM, XYZT_UNITS = 40, 123


def _header_edit(tmp_path: Path, name: str, offset: int, fmt: str, value: int) -> Path:
    """A copy of nibabel's ``name`` with one header field overwritten, in the file's own byte order and
    compression (anatomical.nii is big-endian and plain, example4d.nii.gz little-endian and gzipped)."""
    source = nibabel_file(name)
    packed = name.endswith(".gz")
    raw = bytearray(gzip.decompress(source.read_bytes()) if packed else source.read_bytes())
    order = ">" if raw[:4] == struct.pack(">i", 348) else "<"
    struct.pack_into(order + fmt, raw, offset, value)
    path = tmp_path / f"edited-{name}"
    path.write_bytes(gzip.compress(bytes(raw)) if packed else bytes(raw))
    return path


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (0, -1, "declares -1 dimensions (dim[0] must be 1 to 7)"),
        (0, 8, "declares 8 dimensions (dim[0] must be 1 to 7)"),
        (3, 0, " x 0"),  # a volume of no slices: 33 x 41 x 0 was shown as an empty image
    ],
)
def test_an_impossible_dimension_is_a_corrupt_file_naming_the_file_and_the_field(
    tmp_path: Path, name: str, field: int, value: int, reason: str
):
    path = _header_edit(tmp_path, name, DIM + 2 * field, "h", value)
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path
    assert "NIfTI header declares" in caught.value.reason and reason in caught.value.reason


def test_medviewer_info_on_a_volume_of_no_slices_prints_the_reason_not_a_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture
):
    path = _header_edit(tmp_path, "anatomical.nii", DIM + 6, "h", 0)
    assert main(["info", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"medviewer info: {path}: the NIfTI header declares a 33 x 41 x 0 array"


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_an_undefined_spatial_unit_opens_in_millimetres_and_says_so(tmp_path: Path, name: str):
    """xyzt_units 255 (spatial code 7, which NIfTI leaves undefined) raised a KeyError; the voxels and their
    geometry are those of the intact file, read as millimetres as every NIfTI tool does, with a warning."""
    intact = open_volume(nibabel_file(name))
    edited = open_volume(_header_edit(tmp_path, name, XYZT_UNITS, "B", 255))
    assert "the spatial unit code 7 is not one NIfTI defines; millimetres are assumed" in edited.warnings
    np.testing.assert_allclose(edited.spacing, intact.spacing)
    np.testing.assert_allclose(edited.origin, intact.origin)
    np.testing.assert_array_equal(edited.array, intact.array)


BOMB_SCRIPT = """
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]),) * 2)
from tests.support.memory import peak_resident_mib
from medviewer.core.errors import MedviewerError
from medviewer.io import open_volume
started = time.perf_counter()
try:
    outcome = "opened %s" % (open_volume(Path(sys.argv[1])).shape,)
except MedviewerError as exc:
    outcome = "refused: " + str(exc)
print(json.dumps({"outcome": outcome, "peak_mib": peak_resident_mib(), "seconds": time.perf_counter() - started}))
"""
ADDRESS_SPACE = 3 << 30  # the child's fence: a reader that inflates the whole stream fails here, not the machine


def test_real_voxels_followed_by_a_gigabyte_of_zeros_stop_at_the_declared_size(tmp_path: Path):
    """example4d.nii.gz, intact, with 1 GiB of zeros after its last voxel (a 1 MB file): the stream is read
    up to what the header declares and one byte more, in a child limited in address space and time."""
    path = tmp_path / "example4d-bomb.nii.gz"
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(gzip.decompress(nibabel_file("example4d.nii.gz").read_bytes()))
        zeros = bytes(1 << 20)
        for _ in range(1024):
            stream.write(zeros)
    assert path.stat().st_size < 2 << 20
    result = json_from_child(BOMB_SCRIPT, str(path), str(ADDRESS_SPACE), timeout=120)
    assert result["outcome"].startswith(f"refused: {path}: the gzip stream holds more than the ")
    assert "compression bomb" in result["outcome"]
    assert result["peak_mib"] < 300, result
