"""Judge measured records against the registry's gates (champion/challenger included)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmops.evaluation.record import EvaluationRecord
from llmops.registry import EvaluationGate


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@dataclass
class GateVerdict:
    gate: EvaluationGate
    value: float | None
    serving: float | None = None
    reasons: list[str] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "threshold": self.gate.threshold, "passed": self.passed}
        if self.serving is not None:
            out["serving"] = self.serving
        return out

    def explain(self) -> str:
        """One paragraph: the gate, the value, the threshold, the serving version's value, the worst examples."""
        g = self.gate
        direction = ">=" if g.higher_is_better else "<="
        line = (
            f"gate {g.suite}/{g.metric}: measured {_fmt(self.value)}, needs {direction} {_fmt(g.threshold)}"
            f"; serving version: {_fmt(self.serving)}"
        )
        if self.passed:
            return line + " (passed)"
        lines = [line + " -- FAILED: " + "; ".join(self.reasons)]
        for ex in self.worst:
            lines.append(f"    worst: {ex.get('input')!r} -> {ex.get('response')!r} (expected {ex.get('target')!r})")
        return "\n".join(lines)


def judge(
    gate: EvaluationGate, record: EvaluationRecord | None, serving: EvaluationRecord | None = None
) -> GateVerdict:
    """The verdict of one gate on a candidate's record, against the serving version's record."""
    value = None if record is None else record.metrics.get(gate.metric)
    champion = None if serving is None else serving.metrics.get(gate.metric)
    verdict = GateVerdict(gate, value, champion, worst=list(record.worst) if record else [])
    if record is None:
        verdict.reasons.append(f"no evaluation of suite {gate.suite}")
        return verdict
    if value is None:
        known = ", ".join(sorted(record.metrics)) or "none"
        verdict.reasons.append(f"suite {gate.suite} reports no metric {gate.metric!r} (it reports: {known})")
        return verdict
    if not gate.passes(value):
        verdict.reasons.append(f"{gate.metric} {_fmt(value)} misses the threshold {_fmt(gate.threshold)}")
    if gate.max_regression_vs_serving is not None and champion is not None:
        regression = (champion - value) if gate.higher_is_better else (value - champion)
        if regression > gate.max_regression_vs_serving:
            verdict.reasons.append(
                f"{_fmt(regression)} worse than the serving version ({_fmt(champion)}), "
                f"more than max_regression_vs_serving {_fmt(gate.max_regression_vs_serving)}"
            )
    return verdict


def judge_all(
    gates: list[EvaluationGate],
    records: dict[str, EvaluationRecord],
    serving: dict[str, EvaluationRecord] | None = None,
) -> list[GateVerdict]:
    serving = serving or {}
    return [judge(g, records.get(g.suite), serving.get(g.suite)) for g in gates]


def summary(verdicts: list[GateVerdict]) -> dict[str, dict[str, dict[str, Any]]]:
    """`{suite: {metric: {value, threshold, passed}}}`, what `llmops eval run --json` prints."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for v in verdicts:
        out.setdefault(v.gate.suite, {})[v.gate.metric] = v.to_dict()
    return out
