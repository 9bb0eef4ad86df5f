"""Approval pins what decides a model's meaning, and a package cannot take memory or the terminal.

The attack that motivated it, on the real demo CT model: with only its metadata edited after approval
(classes swapped, diagnostic use claimed), the model ran and its "normal" output was labelled "lesion"."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from medviewer.ai import registry
from medviewer.ai.commands import card_summary
from medviewer.ai.package import ModelPackageError, load_module, read_package
from medviewer.ai.registry import UntrustedModelError
from medviewer.catalog import audit
from tests.ai.tiny_bundle import Exported, write_bundle

REPO = Path(__file__).resolve().parents[2]
DEMO_CT_BUNDLE = REPO / "models" / "ct_slice_lesion" / "bundle"


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """The shipped, approved demo CT bundle, copied as a person would copy it."""
    return Path(shutil.copytree(DEMO_CT_BUNDLE, tmp_path / "ct_slice_lesion"))


def test_the_shipped_bundle_loads_as_approved(demo_copy: Path):
    assert load_module(read_package(demo_copy)).package.spec.classes == ("normal", "lesion")


def test_metadata_edited_after_approval_is_refused_until_approved_again(demo_copy: Path):
    metadata_file = demo_copy / "configs" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    block = metadata["medviewer"]
    block["output"]["classes"] = block["output"]["classes"][::-1]  # "normal" read as "lesion"
    metadata["network_data_format"]["outputs"]["pred"]["channel_def"] = {"0": "lesion", "1": "normal"}
    block["diagnostic_use"] = True
    metadata_file.write_text(json.dumps(metadata))
    package = read_package(demo_copy)
    assert package.spec.classes == ("lesion", "normal")  # the weights file is the approved one, unchanged
    with pytest.raises(UntrustedModelError) as raised:
        load_module(package)
    assert "configs/metadata.json changed since the model was approved" in str(raised.value)
    assert audit.events(event="model_refused")[0].details["reason"] == "metadata changed"

    registry.approve(package.weights["torchscript"], package)  # a person read the new card and approved it
    assert load_module(package, prefer="torchscript").package.spec.classes == ("lesion", "normal")
    assert load_module(read_package(DEMO_CT_BUNDLE)).package.spec.classes == ("normal", "lesion")


def test_a_card_edited_after_approval_is_refused(demo_copy: Path):
    card = demo_copy / "docs" / "README.md"
    card.write_text(card.read_text() + "\nCleared for diagnostic use.\n")
    with pytest.raises(UntrustedModelError, match=r"docs/README\.md changed since the model was approved"):
        load_module(read_package(demo_copy))


def test_an_approval_from_before_pins_asks_again(tmp_path: Path, exported: Exported):
    package = read_package(write_bundle(tmp_path / "bundle", exported, card="# Tiny\n"))
    registry.approve(package.weights["export"], package)
    stored = json.loads(registry.registry_path().read_text())
    del stored[0]["pinned"]
    registry.registry_path().write_text(json.dumps(stored))
    with pytest.raises(UntrustedModelError, match="approved before approvals covered the model's metadata and card"):
        load_module(package, prefer="export")


def test_a_card_cannot_drive_the_terminal_or_forge_a_hash(tmp_path: Path, exported: Exported, medviewer_home: Path):
    forged = "\x1b[2K\r              SHA-256 " + "0" * 64
    bundle = write_bundle(tmp_path / "bundle", exported, card=f"# Tiny\n{forged}\n\x1b]0;title\x07\n")
    package = read_package(bundle)
    summary = card_summary(package, {file: registry.sha256_of(file) for file in package.weights.values()})
    assert "\x1b" not in summary and "\r" not in summary and "\x07" not in summary
    assert "  | \\x1b[2K\\r              SHA-256 " + "0" * 64 in summary
    assert not [line for line in summary.splitlines() if line.lstrip().startswith("SHA-256 000")]
    assert "torch.export (.pt2) file runs code from it" in summary
    done = subprocess.run(
        [sys.executable, "-m", "medviewer", "models", "add", str(bundle)],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MEDVIEWER_HOME": str(medviewer_home)},
    )
    assert done.returncode == 1 and "\x1b" not in done.stdout and "was not approved" in done.stderr


def test_an_oversized_card_or_deep_metadata_is_refused_before_it_is_read(tmp_path: Path, exported: Exported):
    bundle = write_bundle(tmp_path / "big", exported, card="# Tiny\n")
    with open(bundle / "docs" / "README.md", "r+b") as card:
        card.truncate(100 * 1024 * 1024)  # 100 MB, sparse
    with pytest.raises(ModelPackageError, match="too large for a model card; it was not read"):
        read_package(bundle)
    deep = write_bundle(tmp_path / "deep", exported)
    (deep / "configs" / "metadata.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelPackageError, match="nested too deeply to be metadata"):
        read_package(deep)


def _inflating_pt2(exported: Exported, out: Path) -> Path:
    """The real .pt2 with its metadata.json replaced by 1 GiB of deflated zeros (about 1 MB) whose headers
    declare 2 bytes: what zipfile.read inflated in one step before cutting it to size."""
    with zipfile.ZipFile(exported.pt2) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            if member.filename.endswith("extra/metadata.json"):
                name = member.filename
            else:
                target.writestr(member, source.read(member))
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with target.open(info, "w") as stream:
            for _ in range(1024):
                stream.write(bytes(1 << 20))
    raw = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as archive:
        member = archive.getinfo(name)
    struct.pack_into("<I", raw, member.header_offset + 22, 2)  # local header: uncompressed size
    central = raw.rindex(b"PK\x01\x02")
    while raw[central + 46 : central + 46 + len(name)] != name.encode():
        central = raw.rindex(b"PK\x01\x02", 0, central)
    struct.pack_into("<I", raw, central + 24, 2)  # central directory: uncompressed size
    out.write_bytes(bytes(raw))
    return out


def test_a_pt2_whose_metadata_inflates_to_a_gigabyte_is_refused_in_bounded_memory(tmp_path: Path, exported: Exported):
    bomb = _inflating_pt2(exported, tmp_path / "bomb.pt2")
    assert bomb.stat().st_size < 3 * 1024 * 1024
    script = (
        "import json, sys; from pathlib import Path; from tests.benchmarks.memory import peak_resident_mib\n"
        "from medviewer.ai.package import ModelPackageError, read_package\n"
        "try:\n    read_package(Path(sys.argv[1])); outcome = 'read'\n"
        "except ModelPackageError as exc:\n    outcome = exc.reason\n"
        "print(json.dumps({'outcome': outcome, 'peak_mib': peak_resident_mib()}))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(bomb)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert "extra/metadata.json is damaged or not what its header declares" in result["outcome"]
    assert result["peak_mib"] < 600, result  # it peaked at 2.2 GB before
