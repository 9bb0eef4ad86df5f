"""Running a model through the actions, without Qt: the numbers, and the traces every run leaves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medviewer.actions.catalog_import import import_into_catalog
from medviewer.actions.model_runs import LoadedModels, RunSetup, classify_slices, explain_volume
from medviewer.actions.opening import open_image
from medviewer.ai.inference import run_slices
from medviewer.ai.package import ModelPackage, load_module
from medviewer.ai.stored_results import load_result, results_folder
from medviewer.catalog import audit
from medviewer.catalog.browse import ai_results_for, series_key
from medviewer.catalog.schema import catalog_path, connect
from medviewer.cli.infer import infer_main
from medviewer.io import open_volume


def _damage_the_trail() -> None:
    """Another file where the trail was (approving the model wrote it already)."""
    for file in audit.audit_path().parent.glob(audit.audit_path().name + "*"):
        file.unlink()
    audit.audit_path().write_bytes(b"not a database" * 100)


def _inference_events() -> list[audit.AuditEvent]:
    return audit.events(event="inference")


def test_a_run_on_a_catalogued_series_is_audited_kept_and_listed(approved: ModelPackage, ct2_dir: Path):
    opened = open_image(ct2_dir)
    assert not opened.problems
    import_into_catalog([ct2_dir], catalog_path())
    setup = RunSetup(LoadedModels("cpu"), approved, opened.identity, catalog=catalog_path())
    run = classify_slices(setup, opened.image, [0, 1, 2, 3])

    # the numbers are the ai layer's, on the same image
    direct = run_slices(load_module(approved), open_volume(ct2_dir), [0, 1, 2, 3])
    np.testing.assert_allclose(run.result.probabilities, direct.probabilities, atol=1e-6)
    uid = opened.image.metadata["series_uid"]
    assert opened.identity.key == series_key(uid)

    [event] = _inference_events()
    assert event.subject == series_key(uid)
    assert event.details["model_hash"] == run.result.info.model_hash
    assert event.details["ood"]["checked"] is False  # the tiny model has no training reference: said, not hidden
    assert [e.subject for e in audit.events(event="open")] == [audit.path_subject(ct2_dir)]

    assert run.recorded.catalogued and not run.recorded.problems
    with connect() as connection:
        [row] = ai_results_for(connection, [series_key(uid)])
    assert row.model_hash == run.result.info.model_hash and row.result_file == run.recorded.result_file.name
    kept = load_result(results_folder() / row.result_file)
    np.testing.assert_array_equal(kept.result.probabilities, run.result.probabilities)
    assert kept.image_shape == opened.image.shape


def test_a_nifti_volume_is_audited_but_not_catalogued(approved: ModelPackage, tmp_path: Path, ct2_dir: Path):
    nifti = tmp_path / "ct.nii.gz"
    import SimpleITK as sitk

    sitk.WriteImage(open_volume(ct2_dir).to_sitk(), str(nifti))
    opened = open_image(nifti)
    setup = RunSetup(LoadedModels("cpu"), approved, opened.identity, catalog=catalog_path())
    run = classify_slices(setup, opened.image, [0])
    assert not run.recorded.catalogued and run.recorded.result_file is None and not run.recorded.problems
    [event] = _inference_events()
    assert event.subject == audit.path_subject(nifti)
    assert not any(results_folder().glob("*.npz")) if results_folder().exists() else True


def test_saliency_arrives_on_the_volume_grid_and_is_audited(approved: ModelPackage, ct2_dir: Path):
    opened = open_image(ct2_dir)
    volume = opened.image
    saliency = explain_volume(RunSetup(LoadedModels("cpu"), approved, opened.identity), volume, 2, "gradcam", 1)
    heat = saliency.heatmap
    assert heat.shape == volume.shape and heat.spacing == volume.spacing and heat.origin == volume.origin
    assert np.nanmax(heat.array[2]) > 0.5  # normalised to 1 on the explained slice, then resampled
    assert np.isnan(heat.array[0]).all() and np.isnan(heat.array[3]).all()  # no map away from that slice
    assert saliency.method == "Grad-CAM" and saliency.class_name == "lesion"
    assert _inference_events()[0].details["model_hash"] == saliency.info.model_hash


def test_a_trail_that_cannot_be_written_does_not_undo_the_open_or_the_run(approved: ModelPackage, ct2_dir: Path):
    _damage_the_trail()
    opened = open_image(ct2_dir)
    run = classify_slices(RunSetup(LoadedModels("cpu"), approved, opened.identity), opened.image, [0])
    assert opened.image.shape == open_volume(ct2_dir).shape and run.result.probabilities.shape == (1, 2)
    for problems in (opened.problems, run.recorded.problems):
        [problem] = problems.messages
        assert problem.startswith("Not recorded in the audit trail:") and str(audit.audit_path()) in problem


def test_medviewer_infer_writes_an_inference_event_and_a_catalog_row(
    approved: ModelPackage, ct2_dir: Path, tmp_path: Path, capsys
):
    series = tmp_path / "ct"
    shutil.copytree(ct2_dir, series)
    code = infer_main(["--model", str(approved.source), str(series), "--json"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    uid = open_volume(series).metadata["series_uid"]

    [event] = _inference_events()
    assert event.subject == series_key(uid) and event.details["model_hash"] == report["model"]["sha256"]
    assert event.details["ood"]["checked"] is report["ood"]["checked"] is False
    assert len(report["per_slice"]) == open_volume(series).shape[0]
    with connect() as connection:
        [row] = ai_results_for(connection, [series_key(uid)])
        instances = connection.execute("SELECT count(*) FROM instances").fetchone()[0]
    assert instances == 4  # the series itself was catalogued, as the window does with what it opens
    assert row.model_hash == report["model"]["sha256"] and row.result_file == report["recorded"]["result_file"]
    kept = load_result(results_folder() / row.result_file)
    per_slice = [[slice_["probabilities"][name] for name in ("normal", "lesion")] for slice_ in report["per_slice"]]
    np.testing.assert_allclose(kept.result.probabilities, per_slice, atol=1e-6)


def test_medviewer_infer_says_what_it_could_not_record_and_fails(
    approved: ModelPackage, ct2_dir: Path, capsys
):
    _damage_the_trail()
    code = infer_main(["--model", str(approved.source), str(ct2_dir), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["per_slice"]  # the numbers are still printed
    assert "Not recorded in the audit trail" in captured.err and str(audit.audit_path()) in captured.err


@pytest.mark.parametrize("method", ["gradcam", "occlusion", "ig"])
def test_every_offered_method_runs(approved: ModelPackage, ct2_dir: Path, method: str):
    opened = open_image(ct2_dir)
    saliency = explain_volume(RunSetup(LoadedModels("cpu"), approved, opened.identity), opened.image, 1, method, 0)
    assert np.isfinite(saliency.heatmap.array[1]).any()
