"""Passing evaluation records of served versions, the evidence production's policy asks for.

`llmops ci deploy` evaluates each version on the staging endpoint before prod and
writes the record of every suite it passed to
`<records dir>/<model>/<version>/<suite>.json` (the records dir is
`$LLMOPS_EVALUATION_RECORDS`, default `.state/evaluations/records`; CI carries it
from the staging job to the prod job as a build artifact). A prod endpoint's
component inputs carry these records, so the evaluation-gate policy judges what was
measured, where and with what, never a number typed into the registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmops.evaluation.record import EvaluationRecord

RECORDS_ENV = "LLMOPS_EVALUATION_RECORDS"
RECORDS_DIR = ".state/evaluations/records"
TRACE_FIELDS = ("suite", "suiteSha256", "weights", "lmEvalVersion", "evaluatedAt", "where")


def records_dir(root: Path) -> Path:
    return Path(os.environ.get(RECORDS_ENV) or root / RECORDS_DIR)


def write_record(folder: Path, version: str, record: EvaluationRecord, passed: bool) -> Path:
    """Write `record` under `folder` (a records dir, see `records_dir`)."""
    path = folder / record.model / version / f"{record.suite}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record.to_output(), "passed": passed}, indent=2, sort_keys=True) + "\n")
    return path


def evaluation_records(model: str, root: Path, versions: list[str]) -> dict[str, list[dict[str, Any]]]:
    """{version: [record, ...]} of the passing-or-not records found for each version."""
    base = records_dir(root) / model
    out: dict[str, list[dict[str, Any]]] = {}
    for version in versions:
        folder = base / version
        found = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                found.append(json.loads(path.read_text()))
            except ValueError:
                continue
        out[version] = found
    return out
