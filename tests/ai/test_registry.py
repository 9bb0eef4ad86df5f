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
from tests.support.tiny_bundle import SHAPE, Exported, write_bundle

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
    assert registry.is_approved(file, package)
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
    assert not registry.is_approved(file, package)
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
    stored |= {"approved_at": "2026-01-01T00:00:00+00:00", "pinned": package.pinned}
    builtin.write_text(json.dumps([stored]))
    monkeypatch.setattr(registry, "BUILTIN_FILE", builtin)
    assert [e.builtin for e in registry.entries()] == [True]
    assert registry.is_approved(file, package)
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
        "  | Random weights, for tests.",
        "approved tiny lesion classifier 0.1.0 (2 files)",
        *(f"SHA-256 {h}" for h in hashes),
    ):
        assert line in out
    assert main(["models", "list", "--json"]) == 0
    listed = [e for e in json.loads(capsys.readouterr().out) if not e["builtin"]]
    assert [(e["sha256"], e["file_name"], e["builtin"], e["source"]) for e in listed] == [
        (hashes[0], "model.ts", False, str(bundle.resolve())),
        (hashes[1], "model.pt2", False, str(bundle.resolve())),
    ]
    assert main(["models", "add", str(bundle)]) == 0  # nothing to ask
    assert "is already approved" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # name@version, as --model takes it, and where the approval was made from
    assert [line for line in lines if line.startswith("tiny lesion classifier@0.1.0  model.")] == [
        f"tiny lesion classifier@0.1.0  {name}  {digest}  (approved {entry.approved_at})  from {bundle.resolve()}"
        for name, digest, entry in zip(
            ("model.ts", "model.pt2"), hashes, [e for e in registry.entries() if not e.builtin], strict=True
        )
    ]
    assert any(line.startswith("ct-slice-lesion-demo@") and line.endswith("(built in)") for line in lines)  # no source


def test_a_single_file_approval_records_the_file_and_old_entries_stay_valid(exported: Exported, tmp_path: Path):
    single = tmp_path / "tiny.pt2"
    shutil.copy(exported.pt2, single)
    package = read_package(single)
    assert registry.approve(single, package).source == str(single.resolve())
    stored = json.loads(registry.registry_path().read_text())
    assert stored[0]["source"] == str(single.resolve())
    # An entry written before sources were recorded has none, and still approves its file.
    del stored[0]["source"]
    registry.registry_path().write_text(json.dumps(stored))
    (entry,) = [e for e in registry.entries() if not e.builtin]
    assert entry.source is None and registry.is_approved(single, package)
    assert load_module(package).format == "export"


def test_approving_again_records_where_an_old_or_moved_approval_lies(exported: Exported, tmp_path: Path):
    first = tmp_path / "first" / "tiny.ts"
    first.parent.mkdir()
    shutil.copy(exported.ts, first)
    registry.approve(first, read_package(first))
    stored = json.loads(registry.registry_path().read_text())
    approved_at = stored[0]["approved_at"]
    del stored[0]["source"]  # approved before sources were recorded
    registry.registry_path().write_text(json.dumps(stored))
    assert main(["models", "add", str(first)]) == 0  # already approved: nothing asked, the source recorded
    (entry,) = [e for e in registry.entries() if not e.builtin]
    assert (entry.source, entry.approved_at) == (str(first.resolve()), approved_at)
    # The same bytes moved elsewhere: approving them there records the new place; still one approval.
    moved = tmp_path / "moved" / "tiny.ts"
    moved.parent.mkdir()
    first.rename(moved)
    assert registry.approve(moved, read_package(moved)).source == str(moved.resolve())
    assert [e.source for e in registry.entries() if not e.builtin] == [str(moved.resolve())]
    assert len(audit.events(event="model_approved")) == 1
    # While the first place still holds the file, a copy elsewhere does not take the approval's source.
    copy = tmp_path / "copy" / "tiny.ts"
    copy.parent.mkdir()
    shutil.copy(moved, copy)
    assert registry.approve(copy, read_package(copy)).source == str(moved.resolve())


def test_a_source_that_is_not_an_absolute_path_is_damage(bundle: Path):
    package = read_package(bundle)
    registry.approve(package.weights["export"], package)
    stored = json.loads(registry.registry_path().read_text())
    stored[0]["source"] = "relative/tiny"
    registry.registry_path().write_text(json.dumps(stored))
    with pytest.raises(ModelRegistryError, match="entry 1: source is not an absolute path"):
        registry.entries()


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
