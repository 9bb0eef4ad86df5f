"""What a person sees when a file is damaged or hostile: a typed error naming the file and the cause, in
`medviewer info` (never a traceback) and in the window (never stuck on "Opening..."), and a memory peak
bounded by what the file holds, not by what its header claims."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medviewer.core.errors import CorruptFileError, is_decoder_panic
from medviewer.io import open_volume
from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from tests.support.child_process import json_from_child, run_medviewer
from tests.support.mutation_corpus import _big_tiled_tiff, _nifti_gzip_bomb, _rle_pixel_damage
from tests.support.windows import shown

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def panicking_rle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MR (pydicom's MR_small_RLE) whose RLE segments are damaged so that pylibjpeg-rle's Rust decoder
    panics: the case must be real, so it is found by decoding, not assumed."""
    out = tmp_path_factory.mktemp("rle")
    for case in _rle_pixel_damage(out, 12):
        try:
            _ = pydicom.dcmread(case.path).pixel_array
        except BaseException as exc:  # noqa: BLE001 - looking for the panic
            if is_decoder_panic(exc):
                return case.path
    raise AssertionError("no damaged RLE file made the decoder panic; the test no longer covers a real panic")


def test_a_decoder_panic_is_a_corrupt_file_error_naming_the_file(panicking_rle: Path):
    with pytest.raises(CorruptFileError) as caught:
        open_volume(panicking_rle)
    assert caught.value.path == panicking_rle and "PanicException" in caught.value.reason


def test_info_on_a_file_that_makes_the_decoder_panic_prints_one_sentence(panicking_rle: Path, medviewer_home: Path):
    done = run_medviewer("info", str(panicking_rle), home=medviewer_home)
    assert done.returncode == 1
    assert str(panicking_rle) in done.stderr and "damaged" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_the_window_reports_a_panicking_file_and_does_not_wait_for_it(qtbot, panicking_rle: Path):
    window = shown(qtbot, MainWindow(make_settings()), 1200, 800)
    window.open_paths([panicking_rle])
    qtbot.waitUntil(lambda: not window.busy(), timeout=60_000)
    assert [m for m in window.message_bar.messages if panicking_rle.name in m and "damaged" in m]
    assert not window.statusBar().currentMessage().startswith("Opening")
    assert window.volume_view.volume is None


PEAK_SCRIPT = """
import json, sys, time
from pathlib import Path
from tests.support.memory import peak_resident_mib
from medviewer.core.errors import MedviewerError
started = time.perf_counter()
try:
    if sys.argv[1] == "slide":
        from medviewer.io.slide import Slide
        with Slide(Path(sys.argv[2])) as slide:
            outcome = "thumbnail %dx%d" % slide.thumbnail(256).shape[1::-1]
    else:
        from medviewer.io import open_volume
        outcome = "opened %s" % (open_volume(Path(sys.argv[2])).shape,)
except MedviewerError as exc:
    outcome = "refused: " + exc.reason
print(json.dumps({"outcome": outcome, "peak_mib": peak_resident_mib(), "seconds": time.perf_counter() - started}))
"""


def _peak(kind: str, path: Path) -> dict:
    """Open in a child limited to 4 GiB of address space, so a regression fails instead of taking the machine."""
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30));"
    return json_from_child(limit + PEAK_SCRIPT, kind, str(path), timeout=600)


@pytest.mark.slow
def test_a_nifti_gzip_bomb_stops_at_what_its_header_declares(tmp_path: Path):
    """2 MB on disk, 2 GiB of zeros inflated, 68 kB of voxels declared: it peaked at 4.2 GB before."""
    bomb = _nifti_gzip_bomb(tmp_path).path
    result = _peak("volume", bomb)
    assert result["outcome"].startswith("refused: the gzip stream holds more than the")
    assert result["peak_mib"] < 400, result


@pytest.mark.slow
def test_a_single_level_30000_pixel_slide_makes_its_thumbnail_in_bounded_memory(tmp_path: Path):
    """A legitimate 30000 x 30000 tiled TIFF without a pyramid: the thumbnail took 10.4 GB before (the whole
    level in one read); strips keep it to a few hundred MB."""
    tiff = _big_tiled_tiff(tmp_path).path
    result = _peak("slide", tiff)
    assert result["outcome"] == "thumbnail 256x256"
    assert result["peak_mib"] < 600, result
