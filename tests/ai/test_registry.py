"""A model loads only after its file's SHA-256 was approved; refusals and approvals are audited."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.package import load_module, read_package
from medviewer.ai.registry import ModelRegistryError, UntrustedModelError
from medviewer.catalog import audit
from medviewer.cli import main
from tests.ai.tiny_bundle import SHAPE, Exported, write_bundle

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture
def bundle(exported: Exported, tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "tiny", exported, card="# Tiny\nRandom weights, for tests.\n")


@pytest.mark.parametrize("weights_format", ["torchscript", "export"])
def test_refused_until_approved_then_same_output(exported: Exported, bundle: Path, weights_format: str):
    package = read_package(bundle)
    file = package.weights[weights_format]
    digest = registry.sha256_of(file)
    with pytest.raises(UntrustedModelError) as raised:
        load_module(package, prefer=weights_format)
    assert str(raised.value).startswith(f"{file}: SHA-256 {digest} is not in the approved models list")
    assert raised.value.sha256 == digest
    refused = audit.events(event="model_refused")
    assert [(e.subject, e.details) for e in refused] == [
        (f"model:{digest}", {"file": file.name, "reason": "not approved"})
    ]

    entry = registry.approve(file, package)
    assert (entry.sha256, entry.name, entry.version, entry.file_name, entry.builtin) == (
        digest,
        "tiny lesion classifier",
        "0.1.0",
        file.name,
        False,
    )
    assert audit.events(event="model_approved")[0].subject == f"model:{digest}"
    assert registry.is_approved(file) and registry.require_approved(file) == digest
    loaded = load_module(package, prefer=weights_format)
    assert (loaded.format, loaded.sha256, loaded.device, loaded.package) == (weights_format, digest, "cpu", package)
    torch.manual_seed(1)
    x = torch.rand(3, 1, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), exported.net(x))
    assert audit.verify().ok


def test_preferred_format_falls_back_to_the_other(bundle: Path):
    (bundle / "models/model.ts").unlink()
    package = read_package(bundle)
    registry.approve(package.weights["export"], package)
    assert load_module(package, prefer="torchscript").format == "export"


def test_changed_file_is_refused_with_its_new_hash(bundle: Path):
    package = read_package(bundle)
    file = package.weights["torchscript"]
    approved = registry.approve(file, package).sha256
    with open(file, "ab") as handle:
        handle.write(b"\0")
    changed = registry.sha256_of(file)
    assert not registry.is_approved(file)
    with pytest.raises(UntrustedModelError) as raised:
        load_module(package)
    message = str(raised.value)
    assert f"SHA-256 {changed} is not in the approved models list" in message and changed != approved
    assert "changed after its approval" in message
    assert audit.events(1)[0].details == {"file": "model.ts", "reason": "not approved"}


def test_approval_is_refused_if_the_shown_hash_is_stale(bundle: Path):
    package = read_package(bundle)
    with pytest.raises(UntrustedModelError, match="changed while it was being approved"):
        registry.approve(package.weights["export"], package, shown_sha256="0" * 64)
    assert [entry for entry in registry.entries() if not entry.builtin] == []


def test_approving_twice_keeps_one_entry(bundle: Path):
    package = read_package(bundle)
    first = registry.approve(package.weights["export"], package)
    assert registry.approve(package.weights["export"], package) == first
    assert len(json.loads(registry.registry_path().read_text())) == 1
    assert len(audit.events(event="model_approved")) == 1


def test_builtin_approvals_are_read_and_flagged(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shipped = registry.entries()  # the shipped list parses: the demo models, approved out of the box
    assert shipped and all(entry.builtin for entry in shipped)
    package = read_package(bundle)
    file = package.weights["export"]
    builtin = tmp_path / "approved_models.json"
    stored = {"sha256": registry.sha256_of(file), "name": "tiny", "version": "1", "file_name": file.name}
    builtin.write_text(json.dumps([{**stored, "approved_at": "2026-01-01T00:00:00+00:00"}]))
    monkeypatch.setattr(registry, "BUILTIN_FILE", builtin)
    assert [e.builtin for e in registry.entries()] == [True]
    assert registry.is_approved(file)
    assert registry.approve(file, package).builtin is True
    assert not registry.registry_path().exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[{", "not valid JSON"),
        ('{"sha256": "ab"}', "a JSON dict, not a list of entries"),
        ('[{"sha256": "ab", "name": "x"}]', "entry 1: version is missing or not a string"),
        ('[{"sha256": "AB", "name": "x", "version": "1", "file_name": "m.ts", "approved_at": "t"}]', "entry 1: sha256"),
    ],
)
def test_damaged_registry_is_reported_and_kept(
    bundle: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
):
    path = registry.registry_path()
    path.write_text(content)
    package = read_package(bundle)
    for attempt in (
        registry.entries,
        lambda: registry.approve(package.weights["export"], package),
        lambda: load_module(package),
    ):
        with pytest.raises(ModelRegistryError) as raised:
            attempt()
        assert str(raised.value).startswith(f"{path}: the approved-models list is damaged: {problem}")
    assert main(["models", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "left as it is" in err
    assert path.read_text() == content
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_models_add_yes_then_list_json(bundle: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["models", "list", "--json"]) == 0
    assert all(entry["builtin"] for entry in json.loads(capsys.readouterr().out))  # only the demo models
    assert main(["models", "add", str(bundle), "--yes"]) == 0
    out = capsys.readouterr().out
    package = read_package(bundle)
    hashes = [registry.sha256_of(f) for f in package.weights.values()]
    for line in (
        "model         tiny lesion classifier 0.1.0",
        "target        slice",
        "classes       normal, lesion (activation: softmax)",
        "input         1 channel, 16 x 16, spacing 0.8 x 0.8 mm, window -1000 to 400",
        "intended use  Tests of medviewer's model packages only.",
        "NOT FOR DIAGNOSTIC USE",
        "  Random weights, for tests.",
        "approved tiny lesion classifier 0.1.0 (2 files)",
        *(f"SHA-256 {h}" for h in hashes),
    ):
        assert line in out
    assert main(["models", "list", "--json"]) == 0
    listed = [e for e in json.loads(capsys.readouterr().out) if not e["builtin"]]
    assert [(e["sha256"], e["file_name"], e["builtin"]) for e in listed] == [
        (hashes[0], "model.ts", False),
        (hashes[1], "model.pt2", False),
    ]
    assert main(["models", "add", str(bundle)]) == 0  # nothing to ask
    assert "is already approved" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out.count("tiny lesion classifier 0.1.0  model.") == 2


@pytest.mark.parametrize("answer", ["n\n", "\n", ""])
def test_models_add_asks_and_no_is_the_default(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, answer: str
):
    single = tmp_path / "tiny.pt2"
    shutil.copy(exported.pt2, single)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    assert main(["models", "add", str(single)]) == 1
    captured = capsys.readouterr()
    assert "Approve this model? [y/N]" in captured.out
    assert captured.err == "medviewer models: tiny lesion classifier 0.1.0 was not approved\n"
    assert [entry for entry in registry.entries() if not entry.builtin] == []


def test_models_add_yes_answer_approves(exported: Exported, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["models", "add", str(exported.ts)]) == 0
    assert [e.file_name for e in registry.entries() if not e.builtin] == ["model.ts"]


def test_models_add_refuses_a_non_model_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "notes.ts"
    path.write_text("not a model")
    assert main(["models", "add", str(path), "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"medviewer models: {path}: is not a model") and err.count("\n") == 1
