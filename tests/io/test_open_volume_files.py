"""open_volume_files: a list of files opens as the folder holding only them would, and reads nothing else."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from medviewer.core.errors import NoImagesFoundError, PathNotFoundError
from medviewer.io import list_series, open_volume, open_volume_files
from tests.support.paths import real_file


def test_a_series_file_list_opens_voxel_for_voxel_as_its_folder(ge_tilt_dir: Path, caplog: pytest.LogCaptureFixture):
    files = sorted(ge_tilt_dir.iterdir(), reverse=True)  # the order given does not matter
    with caplog.at_level(logging.INFO, logger="medviewer.io.open_path"):
        from_files = open_volume_files(files)
        from_folder = open_volume(ge_tilt_dir)
    assert from_files.shape == from_folder.shape
    assert np.array_equal(from_files.array, from_folder.array)
    assert np.allclose(from_files.spacing, from_folder.spacing)
    assert np.allclose(from_files.origin, from_folder.origin)
    assert np.allclose(from_files.direction, from_folder.direction)
    assert from_files.warnings == from_folder.warnings and from_files.warnings  # the tilt is reported by both
    assert from_files.metadata == from_folder.metadata
    opened = [r.getMessage() for r in caplog.records if r.getMessage().startswith("opened volume")]
    assert len(opened) == 2 and opened[0] == opened[1]  # both name the folder, as a digest


def test_a_list_of_two_series_opens_the_one_asked_for_or_the_largest(ct2_dir: Path, tmp_path: Path):
    folder = tmp_path / "study"
    shutil.copytree(real_file("dcm_qa_stc/2_epiRT_ascending"), folder / "epi")
    shutil.copytree(ct2_dir, folder / "ct")
    epi_files, ct_files = sorted((folder / "epi").iterdir()), sorted((folder / "ct").iterdir())
    files = [*ct_files, *epi_files]
    epi, ct = list_series(folder)
    chosen = open_volume_files(files, series_uid=ct.series_uid)
    assert chosen.modality == "CT" and chosen.metadata["series_uid"] == ct.series_uid
    assert np.array_equal(chosen.array, open_volume(folder, series_uid=ct.series_uid).array)
    largest = open_volume_files(files, time_index=2)
    assert largest.metadata["series_uid"] == epi.series_uid and largest.metadata["time_index"] == 2
    assert "the folder holds 2 series; showing the largest" in largest.warnings
    with pytest.raises(NoImagesFoundError, match="the requested series is not in this folder"):
        open_volume_files(epi_files, series_uid=ct.series_uid)


def test_only_the_files_given_are_read(xa30i_dir: Path, tmp_path: Path):
    folder = tmp_path / "series"
    shutil.copytree(xa30i_dir, folder)
    files = sorted(folder.iterdir())
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "damaged.dcm").write_bytes(files[0].read_bytes()[:700])
    assert "they were skipped" in " ".join(open_volume(folder).warnings)
    volume = open_volume_files(files)
    assert volume.shape == (128, 128, 96) and volume.warnings == []
    with_text = open_volume_files([*files, folder / "notes.txt"])
    assert with_text.warnings == ["1 file(s) are not DICOM images; they were skipped"]  # as in a folder


def test_a_missing_file_is_the_error_open_volume_gives_for_a_missing_path(ct2_dir: Path, tmp_path: Path):
    gone = tmp_path / "gone.dcm"
    with pytest.raises(PathNotFoundError) as from_files:
        open_volume_files([*sorted(ct2_dir.iterdir()), gone])
    with pytest.raises(PathNotFoundError) as from_path:
        open_volume(gone)
    assert (from_files.value.path, from_files.value.reason) == (from_path.value.path, from_path.value.reason)
    with pytest.raises(NoImagesFoundError):
        open_volume_files([])
