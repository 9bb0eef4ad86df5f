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
import zlib
from pathlib import Path

import pytest

from medviewer.ai import registry
from medviewer.ai.model_card import card_summary
from medviewer.ai.package import ModelPackageError, load_module, read_package
from medviewer.ai.registry import ModelChangedError, ModelRegistryError, UntrustedModelError
from medviewer.catalog import audit
from medviewer.cli.infer import infer_main
from medviewer.cli.models import models_main
from tests.support.child_process import json_from_child
from tests.support.tiny_bundle import Exported, metadata_with, write_bundle

REPO = Path(__file__).resolve().parents[2]
DEMO_CT_BUNDLE = REPO / "models" / "ct_slice_lesion" / "bundle"


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """The shipped, approved demo CT bundle, copied as a person would copy it."""
    return Path(shutil.copytree(DEMO_CT_BUNDLE, tmp_path / "ct_slice_lesion"))


@pytest.mark.slow
def test_the_shipped_bundle_loads_as_approved(demo_copy: Path):
    assert load_module(read_package(demo_copy)).package.spec.classes == ("normal", "lesion")


def _swap_classes(bundle: Path) -> None:
    """The attack: only the metadata edited, its classes swapped and diagnostic use claimed."""
    metadata_file = bundle / "configs" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    block = metadata["medviewer"]
    block["output"]["classes"] = block["output"]["classes"][::-1]  # "normal" read as "lesion"
    metadata["network_data_format"]["outputs"]["pred"]["channel_def"] = {"0": "lesion", "1": "normal"}
    block["diagnostic_use"] = True
    metadata_file.write_text(json.dumps(metadata))


@pytest.mark.slow
def test_metadata_edited_after_approval_is_refused_until_approved_again(demo_copy: Path):
    _swap_classes(demo_copy)
    package = read_package(demo_copy)
    assert package.spec.classes == ("lesion", "normal")  # the weights file is the approved one, unchanged
    with pytest.raises(ModelChangedError) as raised:
        load_module(package)
    assert raised.value.changed == ("configs/metadata.json",)
    assert str(raised.value).startswith(str(package.weights["torchscript"]))
    assert "configs/metadata.json changed since the model was approved" in str(raised.value)
    assert audit.events(event="model_refused")[0].details["reason"] == "metadata changed"

    registry.approve(package.weights["torchscript"], package)  # a person read the new card and approved it
    assert load_module(package, prefer="torchscript").package.spec.classes == ("lesion", "normal")
    assert load_module(read_package(DEMO_CT_BUNDLE)).package.spec.classes == ("normal", "lesion")


@pytest.mark.slow
def test_a_card_edited_after_approval_is_refused(demo_copy: Path):
    card = demo_copy / "docs" / "README.md"
    card.write_text(card.read_text() + "\nCleared for diagnostic use.\n")
    with pytest.raises(UntrustedModelError, match=r"docs/README\.md changed since the model was approved"):
        load_module(read_package(demo_copy))


@pytest.mark.slow
def test_infer_refuses_the_swapped_metadata_and_runs_once_approved_again(demo_copy: Path, demo_dir: Path, capsys):
    """The attack as the probe ran it: ``medviewer infer`` labelled the model's "normal" output "lesion"."""
    ct2 = str(demo_dir / "ct2")
    assert infer_main(["--model", str(demo_copy), ct2, "--slice", "10", "--json"]) == 0
    approved_run = json.loads(capsys.readouterr().out)
    _swap_classes(demo_copy)
    assert infer_main(["--model", str(demo_copy), ct2, "--slice", "10", "--json"]) == 1
    refused = capsys.readouterr()
    assert refused.out == ""
    assert "configs/metadata.json changed since the model was approved" in refused.err
    assert f"medviewer models add {demo_copy}" in refused.err

    assert models_main(["add", str(demo_copy), "--yes"]) == 0  # a person read the changed card and approved it
    capsys.readouterr()
    assert infer_main(["--model", str(demo_copy), ct2, "--slice", "10", "--json"]) == 0
    swapped_run = json.loads(capsys.readouterr().out)
    assert swapped_run != approved_run  # what was approved now runs, as approved


def test_reapproval_replaces_the_packages_earlier_approval(tmp_path: Path, exported: Exported):
    bundle = write_bundle(tmp_path / "bundle", exported, card="# Tiny\n")
    original = (bundle / "configs" / "metadata.json").read_bytes()
    package = read_package(bundle)
    registry.approve(package.weights["export"], package)
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata_with({"description": "edited"})))
    edited = read_package(bundle)
    with pytest.raises(ModelChangedError, match=r"configs/metadata\.json changed"):
        load_module(edited, prefer="export")
    registry.approve(edited.weights["export"], edited)
    own = [entry for entry in registry.entries() if not entry.builtin]
    assert [entry.pinned for entry in own] == [edited.pinned]  # one approval of this file from this package
    load_module(edited, prefer="export")
    (bundle / "configs" / "metadata.json").write_bytes(original)  # back to what was approved before
    with pytest.raises(ModelChangedError, match=r"configs/metadata\.json changed"):
        load_module(read_package(bundle), prefer="export")


def test_an_approval_from_before_pins_asks_again(tmp_path: Path, exported: Exported):
    package = read_package(write_bundle(tmp_path / "bundle", exported, card="# Tiny\n"))
    registry.approve(package.weights["export"], package)
    stored = json.loads(registry.registry_path().read_text())
    del stored[0]["pinned"]
    registry.registry_path().write_text(json.dumps(stored))
    with pytest.raises(ModelChangedError, match="approved before approvals covered the model's metadata and card"):
        load_module(package, prefer="export")


def test_a_deeply_nested_approved_list_is_reported_as_damaged(tmp_path: Path, exported: Exported):
    registry.registry_path().parent.mkdir(parents=True, exist_ok=True)
    registry.registry_path().write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelRegistryError, match="damaged: nested too deeply"):
        registry.entries()


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


def _padded_member(source: Path, out: Path, suffix: str, padding_mib: int) -> Path:
    """``source`` with its member ending in ``suffix`` deflated with ``padding_mib`` MiB of zeros after its real
    bytes (about 1 kB per MiB), its headers declaring the real bytes' size and CRC-32: zipfile, which stops at
    the declared size and checks the CRC there, and torch read it as the real member."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(out, "w") as target:
        for member in archive.infolist():
            if member.filename.endswith(suffix):
                name, real = member.filename, archive.read(member)
            else:
                target.writestr(member, archive.read(member))
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with target.open(info, "w") as stream:
            stream.write(real)
            for _ in range(padding_mib):
                stream.write(bytes(1 << 20))
    raw = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as archive:
        offset = archive.getinfo(name).header_offset
    central = raw.rindex(b"PK\x01\x02")
    while raw[central + 46 : central + 46 + len(name)] != name.encode():
        central = raw.rindex(b"PK\x01\x02", 0, central)
    for crc_at, size_at in ((offset + 14, offset + 22), (central + 16, central + 24)):  # local, central header
        struct.pack_into("<I", raw, crc_at, zlib.crc32(real))
        struct.pack_into("<I", raw, size_at, len(real))
    out.write_bytes(bytes(raw))
    return out


def test_a_pt2_whose_metadata_inflates_to_a_gigabyte_is_refused_in_bounded_memory(tmp_path: Path, exported: Exported):
    bomb = _padded_member(exported.pt2, tmp_path / "bomb.pt2", "extra/metadata.json", 1024)
    assert bomb.stat().st_size < 3 * 1024 * 1024
    script = (
        "import json, sys; from pathlib import Path; from tests.support.memory import peak_resident_mib\n"
        "from medviewer.ai.package import ModelPackageError, read_package\n"
        "try:\n    read_package(Path(sys.argv[1])); outcome = 'read'\n"
        "except ModelPackageError as exc:\n    outcome = exc.reason\n"
        "print(json.dumps({'outcome': outcome, 'peak_mib': peak_resident_mib()}))"
    )
    result = json_from_child(script, str(bomb))
    assert "extra/metadata.json inflates past the" in result["outcome"]
    assert "bytes its header declares" in result["outcome"]
    assert result["peak_mib"] < 600, result  # it peaked at 2.2 GB before


def test_an_approved_pt2_whose_member_is_not_what_it_declares_never_reaches_torch(tmp_path: Path, exported: Exported):
    """torch reads a record up to its declared size and takes the rest silently: checked before it is handed on."""
    padded = _padded_member(exported.pt2, tmp_path / "padded.pt2", "models/model.json", 64)
    package = read_package(padded)  # the embedded metadata is intact
    registry.approve(padded, package)  # approving a file does not make its archive sound
    with pytest.raises(ModelPackageError, match=r"model\.json inflates past the \d+ bytes its header declares"):
        load_module(package, prefer="export")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "tiny\x1b[2K\rSHA-256 0000"),
        ("version", "1.0\nlesion: 0.99"),
        ("medviewer.output.classes", ["normal", "lesion\u202e"]),
    ],
)
def test_names_printed_as_lines_of_their_own_may_not_hold_control_characters(
    tmp_path: Path, exported: Exported, field: str, value: object
):
    changes = {field: value}
    if field == "medviewer.output.classes":
        changes["network_data_format.outputs.pred.channel_def"] = ...
    bundle = write_bundle(tmp_path / "bundle", exported, metadata_with(changes))
    with pytest.raises(ModelPackageError, match="holds control or formatting characters") as raised:
        read_package(bundle)
    assert str(raised.value).startswith(str(bundle / "configs" / "metadata.json"))


def test_a_cards_own_lines_stay_lines_and_every_other_break_is_escaped(tmp_path: Path, exported: Exported):
    card = "# Tiny\r\nfirst\u2028SHA-256 forged\r\nsecond\x0bthird\r\n"
    package = read_package(write_bundle(tmp_path / "bundle", exported, card=card))
    summary = card_summary(package, {file: registry.sha256_of(file) for file in package.weights.values()})
    card_part = summary.split("model card:\n")[1].splitlines()
    assert card_part == ["  | # Tiny", "  | first\\u2028SHA-256 forged", "  | second\\x0bthird"]


def test_the_approval_dialog_escapes_the_card_and_loads_nothing_it_names(qtbot, tmp_path: Path, exported: Exported):
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QTextDocument

    from medviewer.ui.model_card_dialog import ModelCardDialog

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG a file of this computer")
    card = f"# Tiny\n\x1b[31mred\x1b[0m\n\n![x]({secret.as_uri()})\n\n[open]({secret.as_uri()})\n"
    package = read_package(write_bundle(tmp_path / "bundle", exported, card=card))
    dialog = ModelCardDialog(package, {f: registry.sha256_of(f) for f in package.weights.values()}, "Approve it?")
    qtbot.addWidget(dialog)
    shown = dialog.card.toPlainText()
    assert "\x1b" not in shown and "\\x1b[31mred\\x1b[0m" in shown
    image = dialog.card.document().resource(QTextDocument.ResourceType.ImageResource, QUrl(secret.as_uri()))
    assert bytes(image) != secret.read_bytes()
    assert not dialog.card.openLinks()


@pytest.mark.slow
def test_a_bundles_weights_file_run_on_its_own_is_not_covered_by_the_bundles_approval(demo_copy: Path):
    """Alone, the file is read with the metadata inside it, which the approved bundle's metadata may contradict."""
    alone = read_package(demo_copy / "models" / "model.ts")
    with pytest.raises(ModelChangedError, match="was approved as part of a bundle.*run the bundle folder"):
        load_module(alone)
