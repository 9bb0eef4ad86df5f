"""A few hundred damaged and hostile copies of real public files, each opened as the window opens it in a
child process with a time and memory limit: 0 hangs, 0 crashes, 0 errors outside medviewer's family, 0
peaks over the memory budget, 0 garbage values shown without a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from medviewer.io.memory_guard import MEMORY_FRACTION_VARIABLE, physical_memory
from tests.support.mutation_corpus import build_corpus

REPO = Path(__file__).resolve().parents[2]
BUDGET = 1024**3  # what each case may take: a small budget, so a reader that ignores it shows at once
SLACK_MIB = 256  # decoders' working copies and the interpreter's own growth


def _probe(cases_file: Path) -> tuple[dict, list[dict]]:
    env = {**os.environ, MEMORY_FRACTION_VARIABLE: f"{BUDGET / physical_memory():.6f}"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.mutation_probe", str(cases_file)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3000, check=False,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the probe printed nothing: {done.stderr[-2000:]}"
    return lines[0], lines[1:]


@pytest.mark.slow
def test_damaged_and_hostile_files_end_in_a_typed_error_or_an_honest_image(tmp_path: Path):
    cases = build_corpus(tmp_path / "corpus")
    garbage = {case.name for case in cases if case.garbage}
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps([[case.name, str(case.path)] for case in cases]))
    limits, results = _probe(cases_file)
    assert len(results) == len(cases) >= 250

    failures = []
    for result in results:
        name, outcome = result["case"], result["outcome"]
        if outcome in ("hang", "crash", "untyped"):
            kind = result.get("type") or result.get("signal")
            failures.append(f"{name}: {outcome} {kind} {result.get('message', '')}")
        elif result.get("peak_mib", 0) - limits["baseline_mib"] > limits["budget_mib"] + SLACK_MIB:
            failures.append(f"{name}: peak {result['peak_mib']:.0f} MiB over the {limits['budget_mib']:.0f} MiB budget")
        elif outcome == "ok" and not result["warnings"] and (result["problems"] or name in garbage):
            failures.append(f"{name}: garbage accepted without a warning {result['problems']}")
    tally = Counter(r["outcome"] + ("+warned" if r.get("warnings") else "") for r in results)
    slowest = max(results, key=lambda r: r["seconds"])
    print(f"\n{len(results)} cases: {dict(tally)}; slowest {slowest['case']} {slowest['seconds']} s; "
          f"highest peak {max(r.get('peak_mib', 0) for r in results):.0f} MiB (baseline {limits['baseline_mib']:.0f})")
    assert not failures, f"{len(failures)} of {len(results)} cases failed:\n" + "\n".join(failures)
