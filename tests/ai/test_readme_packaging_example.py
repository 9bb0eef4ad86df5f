"""The README's worked example of packaging a MONAI network, run as written: its files, MONAI's own
``ckpt_export``, then ``medviewer models add`` and ``medviewer infer`` on the demo CT."""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
from pathlib import Path

import pytest

from medviewer.ai.ood import NOT_AVAILABLE
from medviewer.cli import main
from tests.support.paths import REPO

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

MARKER = re.compile(r"<!-- worked-example: (?P<what>[^>]+?) -->\n```[a-z]*\n(?P<body>.*?)```", re.S)


def example_blocks() -> list[tuple[str, str]]:
    return [(m["what"], m["body"]) for m in MARKER.finditer((REPO / "README.md").read_text(encoding="utf-8"))]


@pytest.mark.slow
def test_the_readme_example_packages_densenet121_and_medviewer_runs_it(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    blocks = example_blocks()
    assert [what for what, _ in blocks] == ["configs/inference.json", "configs/metadata.json", "python", "shell"]
    bundle = tmp_path / "my-bundle"
    (bundle / "models").mkdir(parents=True)
    for what, body in blocks:
        if what.startswith("configs/"):
            (bundle / what).parent.mkdir(exist_ok=True)
            (bundle / what).write_text(body, encoding="utf-8")
    script = tmp_path / "export.py"
    script.write_text(dict(blocks)["python"], encoding="utf-8")
    monkeypatch.chdir(bundle)
    runpy.run_path(str(script), run_name="__main__")
    assert (bundle / "models" / "model.ts").is_file()

    monkeypatch.chdir(tmp_path)
    os.symlink(demo_dir, tmp_path / "demo-data")
    add, infer = (shlex.split(line) for line in dict(blocks)["shell"].strip().splitlines())
    assert add[:3] == ["medviewer", "models", "add"]
    assert main([*add[1:], "--yes"]) == 0  # the README's command asks; the test answers yes
    capsys.readouterr()
    assert main(infer[1:]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["name"] == "chest-ct-nodule-slice"
    [row] = report["per_slice"]
    assert (row["slice"], row["index"], report["summary"]["slice"]) == (60, 59, 60)  # 1-based, as the window counts
    assert set(row["probabilities"]) == {"normal", "nodule"}
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert report["ood"]["checked"] is False and report["ood"]["why_not"] == NOT_AVAILABLE
