"""What every demo model's ``train.py`` does after training: write the bundle, check it, and approve it.

Shared by ``models/*/train.py`` so the demo bundles are all exported, checked and approved one way: TorchScript
with ``metadata.json`` in its extra files (as MONAI's ``ckpt_export`` writes it), a torch.export ``.pt2`` with
a dynamic batch dimension, and the weights files' SHA-256 in ``resources/approved_models.json``.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
APPROVALS = REPO / "resources" / "approved_models.json"


def export(net: nn.Module, meta: dict[str, Any], bundle: Path, example: torch.Tensor) -> dict[str, Path]:
    """``bundle``/configs/metadata.json, models/model.ts and models/model.pt2 from the trained ``net``."""
    text = json.dumps(meta, indent=2) + "\n"
    (bundle / "configs").mkdir(parents=True, exist_ok=True)
    (bundle / "models").mkdir(parents=True, exist_ok=True)
    (bundle / "configs" / "metadata.json").write_text(text, encoding="utf-8")
    ts, pt2 = bundle / "models" / "model.ts", bundle / "models" / "model.pt2"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(ts), _extra_files={"metadata.json": text})
    program = torch.export.export(net, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, pt2, extra_files={"metadata.json": text})
    return {"torchscript": ts, "export": pt2}


def check_exports(net: nn.Module, bundle: Path, files: dict[str, Path], spec: object, x: torch.Tensor) -> None:
    """The bundle reads as a package whose spec is the one training used; both files load and agree with the
    trained network for batches of one and many, and ``forward_head(forward_features(x))`` is ``forward(x)``."""
    from medviewer.ai.package import read_package

    declared = read_package(bundle).spec
    if declared != spec:
        raise SystemExit(f"the exported metadata declares {declared}, but training used {spec}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        scripted = torch.jit.load(str(files["torchscript"])).eval()
    exported = torch.export.load(files["export"]).module()
    for n in (1, 5):
        batch = x[:n]
        with torch.no_grad():
            expected = net(batch)
            for name, module in (("TorchScript", scripted), ("torch.export", exported)):
                if not torch.allclose(module(batch), expected, atol=1e-5):
                    raise SystemExit(f"{name} export disagrees with the trained network on a batch of {n}")
            if not torch.allclose(scripted.forward_head(scripted.forward_features(batch)), expected, atol=1e-5):
                raise SystemExit("TorchScript forward_head(forward_features(x)) differs from forward(x)")


def update_approvals(files: dict[str, Path], name: str, version: str) -> list[dict[str, str]]:
    """This model's entries in the built-in approvals replaced by the new files' (other models' kept); an entry
    whose file did not change keeps its approval date, so a rerun that reproduces the files changes nothing."""
    from medviewer.ai.registry import sha256_of

    stored = json.loads(APPROVALS.read_text(encoding="utf-8")) if APPROVALS.exists() else []
    previous = {entry["sha256"]: entry for entry in stored if entry.get("name") == name}
    today = datetime.now(UTC).isoformat(timespec="seconds")
    ours = []
    for file in files.values():
        digest = sha256_of(file)
        entry = previous.get(digest) or {"sha256": digest, "name": name, "version": version, "file_name": file.name}
        ours.append({**entry, "approved_at": entry.get("approved_at", today)})
    kept = [entry for entry in stored if entry.get("name") != name]
    APPROVALS.write_text(json.dumps(kept + ours, indent=2) + "\n", encoding="utf-8")
    return ours


def files_table(files: dict[str, Path], approvals: list[dict[str, str]]) -> str:
    """The model card's table rows: file, bytes, SHA-256."""
    sizes = file_sizes(files)
    return "".join(
        f"| `models/{entry['file_name']}` | {sizes[entry['file_name']]} | `{entry['sha256']}` |\n"
        for entry in approvals
    )


def file_sizes(files: dict[str, Path]) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in files.values()}
