"""Recording what a person did in the window on the audit trail.

The action has already happened when it is recorded (a file opened, annotations saved), so a trail that
cannot be written (damaged, on a full disk) must not undo it or raise into a Qt slot: the window says that
the event was not recorded, naming the trail's file and the cause, and goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from medviewer.catalog import audit
from medviewer.core.errors import MedviewerError


def record_event(
    report: Callable[[str], None], event: str, subject: str, details: Mapping[str, object] | None = None
) -> None:
    try:
        audit.record(event, subject, details)
    except MedviewerError as exc:
        report(f"Not recorded in the audit trail: {exc}")
