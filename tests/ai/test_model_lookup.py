"""``--model NAME[@VERSION]``: approved models found by the name ``medviewer models list`` shows, with real
approvals in the test's own MEDVIEWER_HOME."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.available import builtin_bundles
from medviewer.ai.model_lookup import ModelNotFoundError, approved_models, resolve_model, version_key
from medviewer.ai.package import load_module, read_package
from medviewer.ai.registry import UntrustedModelError
from medviewer.cli import main
from tests.support.models_for_tests import metadata
from tests.support.tiny_bundle import TinyNet

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
NAME = "tiny model"


def builtin(folder: str) -> tuple[Path, str]:
    """A demo bundle's folder and its ``name@version`` (read, so retraining to a new version needs no edit here)."""
    bundle = next(bundle for bundle in builtin_bundles() if bundle.parent.name == folder).resolve()
    package = read_package(bundle)
    return bundle, f"{package.name}@{package.version}"


def tiny_bundle(folder: Path, version: str, seed: int, name: str = NAME) -> Path:
    """A bundle of TinyNet with its own random weights (so its own SHA-256), named ``name`` ``version``."""
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "metadata.json").write_text(json.dumps({**metadata(), "name": name, "version": version}))
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(TinyNet().eval()).save(str(folder / "models" / "model.ts"))
    return folder


def approved(folder: Path) -> Path:
    """Approved as a person does on the command line."""
    assert main(["models", "add", str(folder), "--yes"]) == 0
    return folder


@pytest.fixture
def versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """Three approved versions of one model, whose newest is not the last in text order nor approved last."""
    made = {v: approved(tiny_bundle(tmp_path / v, v, seed)) for seed, v in enumerate(["0.9.0", "0.10.0", "0.2.0"])}
    capsys.readouterr()
    return made


def test_an_existing_path_is_returned_as_it_is(tmp_path: Path):
    folder = tiny_bundle(tmp_path / "not-approved", "1.0", 0)
    assert resolve_model(str(folder)) == folder
    assert resolve_model(folder / "models" / "model.ts") == folder / "models" / "model.ts"


def test_the_builtin_demo_models_are_found_by_name_and_by_name_at_version():
    ct, label = builtin("ct_slice_lesion")
    assert resolve_model("ct-slice-lesion-demo") == ct
    assert resolve_model(label) == ct
    assert read_package(resolve_model("slide-patch-tumour-demo")).spec.target == "slide_patch"


def test_without_a_version_the_newest_approved_one_is_chosen(versions: dict[str, Path]):
    assert resolve_model(NAME) == versions["0.10.0"].resolve()  # 0.10.0 is newer than 0.9.0 and 0.2.0
    for version, folder in versions.items():
        assert resolve_model(f"{NAME}@{version}") == folder.resolve()
    labels = {(model.label, model.path) for model in approved_models()}
    assert {(f"{NAME}@{v}", f.resolve()) for v, f in versions.items()} <= labels


def test_what_models_list_shows_is_what_model_takes(versions: dict[str, Path], capsys: pytest.CaptureFixture[str]):
    assert main(["models", "list"]) == 0
    shown = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]
    assert {f"{NAME}@{v}" for v in versions} | {builtin("ct_slice_lesion")[1]} <= set(shown)
    for label in shown:
        assert read_package(resolve_model(label)).version == label.rpartition("@")[2]


def test_an_unknown_name_lists_the_approved_names_and_versions(versions: dict[str, Path]):
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model("chest-xray")
    message = str(raised.value)
    assert message.startswith("chest-xray: no such file or folder, and no approved model is named chest-xray")
    demos = [builtin(folder)[1] for folder in ("ct_slice_lesion", "slide_patch_tumour")]
    for label in (*demos, *(f"{NAME}@{v}" for v in versions)):
        assert label in message
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model(f"{NAME}@3.0")
    assert str(raised.value) == (
        f"{NAME}@3.0: no such file or folder, and {NAME} is approved only as {NAME}@0.2.0, {NAME}@0.9.0, {NAME}@0.10.0"
    )


def test_a_found_file_whose_hash_is_no_longer_approved_is_refused_when_loaded(versions: dict[str, Path]):
    weights = versions["0.10.0"] / "models" / "model.ts"
    with open(weights, "ab") as handle:  # changed after its approval
        handle.write(b"\0")
    package = read_package(resolve_model(NAME))  # still found by its name: finding is not trusting
    assert package.source == versions["0.10.0"].resolve()
    with pytest.raises(UntrustedModelError, match="is not in the approved models list"):
        load_module(package)


def test_a_package_gone_from_where_it_was_approved_is_not_found_and_the_error_says_why(
    versions: dict[str, Path], tmp_path: Path
):
    shutil.rmtree(versions["0.10.0"])
    assert resolve_model(NAME) == versions["0.9.0"].resolve()  # the newest whose package is still there
    for folder in versions.values():
        shutil.rmtree(folder, ignore_errors=True)
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model(NAME)
    message = str(raised.value)
    assert f"{NAME}@0.10.0" in message and "not where it was approved from" in message
    # A folder that now holds another version does not answer for the one approved there.
    tiny_bundle(versions["0.9.0"], "0.9.1", 7)
    with pytest.raises(ModelNotFoundError):
        resolve_model(f"{NAME}@0.9.0")


def test_an_approval_without_a_source_is_found_once_it_is_added_again(tmp_path: Path, capsys):
    folder = approved(tiny_bundle(tmp_path / "old", "1.0", 3))
    stored = json.loads(registry.registry_path().read_text())
    for entry in stored:
        del entry["source"]  # as written before approvals recorded where they were made
    registry.registry_path().write_text(json.dumps(stored))
    with pytest.raises(ModelNotFoundError, match="predates medviewer recording where"):
        resolve_model(NAME)
    approved(folder)  # "already approved": nothing is asked, and where it lies is recorded
    assert resolve_model(NAME) == folder.resolve()


def test_one_name_and_version_approved_from_two_packages_asks_for_the_path(tmp_path: Path, capsys):
    first = approved(tiny_bundle(tmp_path / "a", "1.0", 1))
    second = approved(tiny_bundle(tmp_path / "b", "1.0", 2))
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_model(NAME)
    message = str(raised.value)
    assert f"{NAME}@1.0 is approved from more than one package" in message
    assert str(first.resolve()) in message and str(second.resolve()) in message


def test_a_name_holding_an_at_sign_is_found_whole(tmp_path: Path, capsys):
    folder = approved(tiny_bundle(tmp_path / "at", "2.0", 4, name="lab@site model"))
    assert resolve_model("lab@site model") == folder.resolve()
    assert resolve_model("lab@site model@2.0") == folder.resolve()


def test_versions_sort_as_versions_not_as_text():
    ordered = ["nightly-7", "nightly-12", "0.2.0", "0.9.0", "0.10.0", "1.0.0rc1", "1.0.0", "1.0.1"]
    assert sorted(reversed(ordered), key=version_key) == ordered  # unreadable versions sort below readable ones
