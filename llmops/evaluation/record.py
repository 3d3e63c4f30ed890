"""The evaluation record: one suite measured on one model, with what produced it.

A record is what gates, the stack outputs, model cards and the production policy read.
It says which suite (name and content hash), which weights (artifact sha256 or
source), which lm-eval version, when and where it ran, so a number is never
separated from how it was measured.
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WORST_EXAMPLES = 3


class EvaluationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str
    suite_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    model: str
    weights: str = Field(description="Artifact sha256 for a local model, else the source (repo@revision, endpoint).")
    lm_eval_version: str
    evaluated_at: str = Field(description="UTC, ISO 8601.")
    where: str = Field(description="What ran it: host:<name>, or sagemaker-endpoint:<name>.")
    seconds: float
    metrics: dict[str, float]
    examples: int = Field(description="How many documents the suite scored.")
    worst: list[dict[str, Any]] = Field(default_factory=list, description="The worst-scored examples.")

    def to_output(self) -> dict[str, Any]:
        """The shape stack outputs and `--json` carry (camelCase like every other output)."""
        return {
            "suite": self.suite,
            "suiteSha256": self.suite_sha256,
            "weights": self.weights,
            "lmEvalVersion": self.lm_eval_version,
            "evaluatedAt": self.evaluated_at,
            "where": self.where,
            "metrics": self.metrics,
        }

    @classmethod
    def from_output(cls, model: str, result: dict[str, Any]) -> EvaluationRecord:
        """A record back from the stack outputs (without its examples, which outputs do not carry)."""
        return cls(
            suite=str(result["suite"]),
            suite_sha256=str(result["suiteSha256"]),
            model=model,
            weights=str(result["weights"]),
            lm_eval_version=str(result["lmEvalVersion"]),
            evaluated_at=str(result["evaluatedAt"]),
            where=str(result["where"]),
            seconds=0.0,
            metrics={k: float(v) for k, v in dict(result["metrics"]).items()},
            examples=0,
        )


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def this_host() -> str:
    return f"host:{socket.gethostname()}"
