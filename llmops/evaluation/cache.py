"""Evaluation records cached by what decides them: (weights, suite sha256, lm-eval version).

The same artifact measured by the same suite with the same harness gives the same
numbers (greedy decoding, fixed seeds), so a record is reused instead of rerun:
a no-change `up`, a version bump that keeps the artifact, or going back to an
earlier artifact costs a file read. Records live beside the artifact store
(`.state/evaluations/`, shared by the checkout's local stacks) and are written
atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from llmops.evaluation.record import EvaluationRecord

CACHE_DIR = ".state/evaluations"  # relative to the repository root; git-ignored


def cache_key(weights: str, suite_sha256: str, lm_eval_version: str) -> str:
    doc = json.dumps({"weights": weights, "suite": suite_sha256, "lm_eval": lm_eval_version}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


class RecordCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, weights: str, suite_sha256: str, lm_eval_version: str) -> EvaluationRecord | None:
        path = self._path(cache_key(weights, suite_sha256, lm_eval_version))
        try:
            return EvaluationRecord.model_validate_json(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def put(self, record: EvaluationRecord) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(cache_key(record.weights, record.suite_sha256, record.lm_eval_version))
        fd, tmp = tempfile.mkstemp(prefix=".record-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write(record.model_dump_json(indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def latest(self, model: str) -> dict[str, EvaluationRecord]:
        """The newest record of each suite for `model` (model cards read these)."""
        newest: dict[str, EvaluationRecord] = {}
        for path in self.root.glob("*.json") if self.root.is_dir() else []:
            try:
                record = EvaluationRecord.model_validate_json(path.read_text())
            except ValueError:
                continue
            if record.model == model and (
                record.suite not in newest or record.evaluated_at > newest[record.suite].evaluated_at
            ):
                newest[record.suite] = record
        return newest
