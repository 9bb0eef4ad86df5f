"""``medviewer audit verify|show``: the audit trail from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from medviewer.catalog.audit import EVENTS, events, verify


def audit_main(argv: Sequence[str]) -> int:
    """``audit verify`` (exit 1 when tampered) and ``audit show [--json] [--limit N] [--event E]``."""
    parser = argparse.ArgumentParser(prog="medviewer audit", description="Check or list the audit trail.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("verify", help="check that no recorded event was changed or removed")
    show = commands.add_parser("show", help="list the newest events")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.add_argument("--limit", type=int, default=50)
    show.add_argument("--event", choices=EVENTS)
    args = parser.parse_args(list(argv))
    if args.command == "verify":
        result = verify()
        if result.ok:
            print(f"audit trail intact: {result.checked} events" if result.problem is None else result.problem)
            return 0
        where = f"seq {result.seq}: " if result.seq is not None else ""
        print(f"audit trail not intact: {where}{result.problem}", file=sys.stderr)
        return 1
    for item in events(args.limit, args.event):
        if args.json:
            print(json.dumps(asdict(item), sort_keys=True))
        else:
            print(f"{item.seq:6d}  {item.time}  {item.event:<15}  {item.subject}  {json.dumps(item.details)}")
    return 0
