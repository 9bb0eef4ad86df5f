"""``medviewer demo-data --eval-set``: balanced labelled images, true to the phantoms' truth, that ``medviewer
evaluate`` reads, and on which the demo models do what their cards say."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviewer.cli import main
from medviewer.cli.evaluate import evaluate_main
from medviewer.demo.eval_sets import write_eval_sets
from medviewer.demo.patch_truth import PATCH_PIXELS, TUMOUR_MIN_FRACTION
from medviewer.io import open_volume
from tests.support.paths import REPO

COUNT = 16
SEED = 5

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval-set")
    write_eval_sets(out, COUNT, SEED)
    return out / "eval"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_ct_slices_are_single_slice_dicom_labelled_by_the_phantom_lesions(eval_dir: Path):
    rows = _rows(eval_dir / "ct_slices.csv")
    assert [r["label"] for r in rows].count("lesion") == COUNT // 2
    assert [r["label"] for r in rows].count("normal") == COUNT // 2
    provenance = {p["path"]: p for p in json.loads((eval_dir / "provenance.json").read_text())["ct_slices"]}
    for row in rows:
        volume = open_volume(eval_dir / row["path"])
        assert volume.shape[0] == 1 and volume.modality == "CT"
        source = provenance[row["path"]]
        z = volume.index_to_world((0, 0, 0))[2]
        assert z == pytest.approx(source["slice_z_mm"], abs=1e-3)
        # The slice's distance from each lesion centre, against that lesion's radius.
        cut = [abs(z - lesion["center_lps_mm"][2]) < lesion["radius_mm"] for lesion in source["lesions"]]
        assert any(cut) if row["label"] == "lesion" else not any(cut)
        # A lesion slice shows soft tissue where a lesion it cuts has its centre; a normal one shows lung.
        for lesion, is_cut in zip(source["lesions"], cut, strict=True):
            x, y, _ = lesion["center_lps_mm"]
            _, row_index, column = np.rint(volume.world_to_index((x, y, z))).astype(int)
            if is_cut and abs(z - lesion["center_lps_mm"][2]) < lesion["radius_mm"] / 2:
                assert volume.array[0, row_index, column] > -300


@pytest.mark.slow
def test_patches_are_model_sized_pngs_labelled_by_the_tumour_polygons(eval_dir: Path):
    rows = _rows(eval_dir / "patches.csv")
    assert [r["label"] for r in rows].count("tumour") == COUNT // 2
    assert [r["label"] for r in rows].count("normal") == COUNT // 2
    provenance = {p["path"]: p for p in json.loads((eval_dir / "provenance.json").read_text())["patches"]}
    dark: dict[str, list[float]] = {"tumour": [], "normal": []}
    for row in rows:
        with Image.open(eval_dir / row["path"]) as image:
            assert image.mode == "RGB" and image.size == (PATCH_PIXELS, PATCH_PIXELS)
            pixels = np.asarray(image)
        fraction = provenance[row["path"]]["tumour_fraction"]
        assert fraction >= TUMOUR_MIN_FRACTION if row["label"] == "tumour" else fraction == 0
        dark[row["label"]].append(float((pixels[..., 1] < 110).mean()))
    # Checked on the pixels too, not only against the writer's own record: the phantom's tumour nuclei are
    # dense, large and dark, so every tumour patch shows more nucleus than any normal one.
    assert min(dark["tumour"]) > max(dark["normal"])
    assert not list(eval_dir.glob("*.tiff")), "the slides the patches were cut from are deleted"


@pytest.mark.slow
def test_the_same_seed_writes_the_same_files(tmp_path: Path):
    for name in ("a", "b"):
        write_eval_sets(tmp_path / name, 4, SEED)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * 4 + 3  # the images, two CSVs and the provenance
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


@pytest.mark.parametrize(("arguments", "named"), [(["--eval-set", "1"], "--eval-set"), (["--seed", "-2"], "--seed")])
def test_demo_data_refuses_an_eval_set_of_one_and_a_negative_seed(
    arguments: list[str], named: str, tmp_path: Path, capsys
):
    with pytest.raises(SystemExit) as raised:
        main(["demo-data", str(tmp_path / "out"), *arguments])
    assert raised.value.code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bundle", "labels"), [("ct_slice_lesion", "ct_slices.csv"), ("slide_patch_tumour", "patches.csv")]
)
def test_each_demo_model_is_accurate_on_its_evaluation_set(bundle: str, labels: str, eval_dir: Path, capsys):
    model = REPO / "models" / bundle / "bundle"
    assert evaluate_main(["--model", str(model), "--labels", str(eval_dir / labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == COUNT
    assert report["accuracy"] >= 0.9
    assert Path(report["reliability_plot"]).is_file()
