"""``medviewer info``: what a file or folder holds, as plain data for printing or JSON."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from medviewer.core.errors import reading
from medviewer.core.volume import Presentation
from medviewer.io.dicom_kind import DicomKind
from medviewer.io.dicom_sr import read_sr, render_sr
from medviewer.io.dicom_stacks import SeriesInfo
from medviewer.io.formats import ImageKind, classify
from medviewer.io.label_maps import referenced_series
from medviewer.io.nifti import is_nifti
from medviewer.io.open_path import dicom_kind_of, list_series, open_slide, open_volume


def describe(path: str | Path) -> dict[str, Any]:
    """Facts about the image at ``path`` (no patient identifiers); raises MedviewerError, whatever a decoder
    below raised (a Rust panic included), so ``medviewer info`` always has one sentence to print."""
    with reading(path):
        if classify(path) is ImageKind.SLIDE:
            return _slide(path)
        return _derived(Path(path)) or _volume(path)


def _slide(path: str | Path) -> dict[str, Any]:
    with open_slide(path) as slide:
        return {
            "kind": "slide",
            "path": str(path),
            "dimensions": list(slide.dimensions),
            "levels": slide.level_count,
            "level_dimensions": [list(d) for d in slide.level_dimensions],
            "downsamples": [round(d, 4) for d in slide.level_downsamples],
            "mpp": slide.mpp,
            "recorded_mpp": slide.recorded_mpp,
            "objective_power": slide.objective_power,
            "vendor": slide.vendor,
            "backend": slide.backend,
            "associated_images": slide.associated_image_names,
            "warnings": list(slide.warnings),
        }


def _volume(path: str | Path) -> dict[str, Any]:
    volume = open_volume(path)
    width, centre = volume.display_window()
    info = {
        "kind": volume.metadata.get("kind", "volume"),
        "presentation": volume.presentation.value,
        "path": str(path),
        "size": [volume.shape[2], volume.shape[1], volume.shape[0]],
        "frames": volume.shape[0] if volume.presentation is not Presentation.VOLUME else 1,
        "dtype": str(volume.array.dtype),
        "photometric": volume.metadata.get("photometric", "MONOCHROME2"),
        "colour": volume.colour is not None,
        "spacing": [round(s, 6) for s in volume.spacing],
        "spacing_known": volume.spacing_known,
        "spacing_note": volume.spacing_note,
        "origin": [round(o, 4) for o in volume.origin],
        "direction": [[round(v, 6) for v in row] for row in volume.direction.tolist()],
        "orientation_known": volume.orientation_known,
        "patient_orientation": list(volume.patient_orientation) if volume.patient_orientation else None,
        "frame_time_ms": volume.frame_time_ms,
        "display_window": {"width": round(width, 4), "centre": round(centre, 4)},
        "window_note": volume.metadata.get("window_note", ""),
        "voi_lut": volume.voi.explanation if volume.voi.lut is not None else None,
        "voi_function": volume.voi.function,
        "inverted": volume.invert_display,
        "overlay_planes": volume.overlay is not None,
        "modality": volume.modality,
        "source": volume.metadata.get("source", ""),
        "warnings": volume.warnings,
    }
    if not is_nifti(Path(path)):
        info["stacks"] = [_stack(stack) for stack in list_series(path)]
    return info


def _stack(info: SeriesInfo) -> dict[str, Any]:
    """A stack as list_series sees it; file names are left out as they may name the patient."""
    fields = {key: value for key, value in dataclasses.asdict(info).items() if key != "files"}
    return {**fields, "files": len(info.files)}


def _derived(path: Path) -> dict[str, Any] | None:
    """A report's content tree, or what a segmentation or structure set was drawn on; None for images."""
    if path.is_dir() or is_nifti(path):
        return None
    kind = dicom_kind_of(path)
    if kind is DicomKind.STRUCTURED_REPORT:
        document = read_sr(path)
        return {
            "kind": "structured report",
            "path": str(path),
            "title": document.title,
            "sop_class": document.sop_class,
            "template": document.template,
            "report": render_sr(document),
        }
    if kind in (DicomKind.SEGMENTATION, DicomKind.RT_STRUCTURE_SET):
        return {"kind": kind.value, "path": str(path), "referenced_series": referenced_series(path)}
    return None
