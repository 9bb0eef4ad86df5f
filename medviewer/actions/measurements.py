"""A volume's measurements: kept beside the series after every change, and exported as a DICOM SR.

Both write files, so the window runs them as jobs on its write lane (in the order asked: an older save
never lands after a newer one), and both leave their audit event.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medviewer.actions.jobs import Job, JobKind, plain_job
from medviewer.actions.trail import Problems, record_event
from medviewer.annotations.measurement_store import MeasurementSidecar
from medviewer.core.measurements import Measurement
from medviewer.core.volume import Volume

if TYPE_CHECKING:
    from medviewer.annotations.measurement_report import WrittenReport


def save_measurements(sidecar: MeasurementSidecar, measurements: Sequence[Measurement], subject: str) -> Problems:
    """Keep the measurements with their series; a failed write is said (naming the file), never raised: the
    measurements stay on screen and the next change tries again."""
    try:
        sidecar.save(measurements)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Problems((f"{sidecar.path}: the measurements could not be saved ({reason})",))
    return record_event("annotation_save", subject, {"measurements": len(measurements)})


def save_job(sidecar: MeasurementSidecar, measurements: Sequence[Measurement], subject: str) -> Job[Problems]:
    kept = copy.deepcopy(tuple(measurements))  # as they are now (the view edits them in place)
    return plain_job(JobKind.SAVE, "Saving the measurements", lambda: save_measurements(sidecar, kept, subject))


@dataclass(frozen=True)
class ReportWritten:
    written: WrittenReport
    problems: Problems


def write_report(
    path: Path, volume: Volume, measurements: Sequence[Measurement], source: Path, subject: str
) -> ReportWritten:
    """The measurements as a DICOM SR (TID 1500) at ``path``, recorded as an export of the series."""
    from medviewer.annotations.measurement_report import write_measurement_report  # highdicom: imported late

    written = write_measurement_report(path, volume, measurements, source)
    return ReportWritten(written, record_event("export", subject, {"what": "measurements DICOM SR"}))


def report_job(
    path: Path, volume: Volume, measurements: Sequence[Measurement], source: Path, subject: str
) -> Job[ReportWritten]:
    kept = copy.deepcopy(tuple(measurements))
    return plain_job(
        JobKind.EXPORT,
        f"Writing {path.name}",
        lambda: write_report(path, volume, kept, source, subject),
        path=path,
    )
