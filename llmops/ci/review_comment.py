"""The review stack's pull request comment: per model, head's answers beside base's, latency,
health, and each evaluation gate measured on head beside base's value.

Kept apart from the plan comment (its own marker) because another workflow writes it;
both are posted the same way (updated in place by marker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmops.ci.review import ENVIRONMENT, Closed, Opened
from llmops.ci.smoke import Answer, Smoke
from llmops.evaluation.gates import judge
from llmops.evaluation.record import EvaluationRecord
from llmops.registry import EvaluationGate

# model -> version -> suite -> a record as the stack outputs carry it (`evaluations`)
Evaluations = Mapping[str, Mapping[str, Mapping[str, Any]]]

REVIEW_MARKER = "<!-- llmops:review -->"


def review_marker(environment: str = ENVIRONMENT) -> str:
    """The comment's marker: one comment per environment, so an AWS review never overwrites the local one."""
    return REVIEW_MARKER if environment == ENVIRONMENT else f"<!-- llmops:review:{environment} -->"


def _cell(text: str | None, error: str = "") -> str:
    if text is None:
        return f"_failed: {error}_" if error else "_n/a_"
    return text.replace("|", "\\|").replace("\n", " ").strip() or "_(empty)_"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def model_section(model: str, head: Smoke, base: Smoke | None, base_note: str) -> list[str]:
    lines = [f"#### `{model}`", ""]
    lines.append(f"- endpoint: {head.url} (health: {head.health}; metrics: {head.metrics})")
    latencies = [a.latency_ms for a in head.answers if a.text is not None]
    if latencies:
        lines.append(
            f"- latency over {len(latencies)} request(s): p50 {_percentile(latencies, 0.5):.0f} ms, "
            f"max {max(latencies):.0f} ms"
        )
    if not head.answers:
        lines += ["", "_The registry gives this model no `examples:` prompts._"]
        return lines
    base_by_prompt: dict[str, Answer] = {a.prompt: a for a in base.answers} if base else {}
    lines += ["", "| Prompt | Head | Base |", "| --- | --- | --- |"]
    for a in head.answers:
        b = base_by_prompt.get(a.prompt)
        base_cell = _cell(b.text, b.error) if b else f"_{base_note}_"
        lines.append(f"| {_cell(a.prompt)} | {_cell(a.text, a.error)} ({a.latency_ms:.0f} ms) | {base_cell} |")
    return lines


def _base_records(model: str, version: str, base: Mapping[str, Mapping[str, Any]]) -> dict[str, EvaluationRecord]:
    """Per suite, base's record of the same version, else of the version base serves first."""
    order = [version, *sorted(v for v in base if v != version)]
    out: dict[str, EvaluationRecord] = {}
    for v in order:
        for suite, result in (base.get(v) or {}).items():
            out.setdefault(suite, EvaluationRecord.from_output(model, dict(result)))
    return out


def evaluation_section(
    model: str, gates: Sequence[EvaluationGate], head: Evaluations, base: Evaluations | None, base_note: str
) -> list[str]:
    """Each gate on each version head serves: base's value, head's, the change, and the verdict
    (with champion/challenger against base's value where the gate sets a maximum regression)."""
    lines = [f"#### Evaluation of `{model}`, base → head", ""]
    if not gates:
        return [*lines, "_This model declares no evaluation gates._"]
    versions = head.get(model) or {}
    if not versions:
        return [*lines, "_Head recorded no evaluation: the stack did not reach its Evaluation._"]
    lines += ["| Version | Gate | Base | Head | Change | Verdict |", "| --- | --- | --- | --- | --- | --- |"]
    for version in sorted(versions):
        records = {s: EvaluationRecord.from_output(model, dict(r)) for s, r in versions[version].items()}
        champions = _base_records(model, version, (base or {}).get(model) or {})
        for gate in gates:
            verdict = judge(gate, records.get(gate.suite), champions.get(gate.suite))
            rule = f"{gate.suite}/{gate.metric} {'≥' if gate.higher_is_better else '≤'} {gate.threshold:g}"
            before = "n/a" if verdict.serving is None else f"{verdict.serving:.4g}"
            after = "n/a" if verdict.value is None else f"{verdict.value:.4g}"
            change = (
                f"{verdict.value - verdict.serving:+.4g}"
                if verdict.value is not None and verdict.serving is not None
                else "n/a"
            )
            outcome = "passed" if verdict.passed else "**failed**: " + _cell("; ".join(verdict.reasons))
            lines.append(f"| `{version}` | {rule} | {before} | {after} | {change} | {outcome} |")
    if not (base or {}).get(model):
        lines += ["", f"_Base: {base_note}._"]
    return lines


def review_comment(
    opened: Opened,
    smokes: dict[str, Smoke],
    bases: dict[str, Smoke],
    base_notes: dict[str, str],
    gates: Mapping[str, Sequence[EvaluationGate]] | None = None,
    base_evaluations: Evaluations | None = None,
) -> str:
    lines = [review_marker(opened.environment), f"### Review stack `{opened.stack}`", ""]
    if not opened.models:
        where = "the local target" if opened.environment == ENVIRONMENT else f"environment {opened.environment}"
        lines.append(f"This pull request changes no model {where} serves: no review stack was started.")
        return "\n".join(lines) + "\n"
    if opened.refused:
        lines.append(f"**No review stack was opened** for {', '.join(opened.models)}: {opened.refused}.")
        return "\n".join(lines) + "\n"
    if opened.result is None or not opened.result.ok:
        code = opened.result.returncode if opened.result else "?"
        tail = "\n".join(opened.result.output.strip().splitlines()[-30:]) if opened.result else ""
        lines += [f"**`pulumi up` of {opened.stack} failed (exit {code})**; the end of its output:", ""]
        lines += ["<details><summary>pulumi up</summary>", "", "```", tail, "```", "</details>", ""]
    elif opened.environment != ENVIRONMENT:
        lines.append(
            f"Up on {opened.environment}: {', '.join(opened.models)}, one replica each on the smallest "
            f"instance that fits; {opened.result.summary()}."
        )
        lines += ["", *aws_endpoints(opened), ""]
    else:
        lines.append(f"Up: {', '.join(opened.models)} on ports from {opened.port}; {opened.result.summary()}.")
        if opened.dashboard_url:
            lines.append(f"Dashboard of every model and version on the review stack: {opened.dashboard_url}")
        lines.append("")
    for model in opened.models:
        if model in smokes:
            lines += [*model_section(model, smokes[model], bases.get(model), base_notes.get(model, "n/a")), ""]
        if gates is not None and opened.result is not None and opened.result.ok:
            note = base_notes.get(model, "n/a")
            section = evaluation_section(model, gates.get(model, []), opened.evaluations, base_evaluations, note)
            lines += [*section, ""]
    return "\n".join(lines).rstrip() + "\n"


def aws_endpoints(opened: Opened) -> list[str]:
    """Each model's endpoint URL and instance from the stack outputs (the program's `endpoints`)."""
    lines = ["| Model | Endpoint URL | Instance |", "| --- | --- | --- |"]
    for model in opened.models:
        out = opened.endpoints.get(model) or {}
        url = f"`{out['url']}`" if out.get("url") else "_not in the stack outputs_"
        lines.append(f"| `{model}` | {url} | {_cell(out.get('instanceType'))} |")
    return lines


def closed_comment(closed: Sequence[Closed], environment: str = ENVIRONMENT) -> str:
    lines = [review_marker(environment), "### Review stacks", ""]
    lines += [f"- `{c.stack}`: {c.reason}" for c in closed] or ["- none to close"]
    return "\n".join(lines) + "\n"
