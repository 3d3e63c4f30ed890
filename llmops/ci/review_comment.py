"""The review stack's pull request comment: per model, head's answers beside base's, latency, health.

Kept apart from the plan comment (its own marker) because another workflow writes it;
both are posted the same way (updated in place by marker).
"""

from __future__ import annotations

from collections.abc import Sequence

from llmops.ci.review import Closed, Opened
from llmops.ci.smoke import Answer, Smoke

REVIEW_MARKER = "<!-- llmops:review -->"


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


def review_comment(
    opened: Opened, smokes: dict[str, Smoke], bases: dict[str, Smoke], base_notes: dict[str, str]
) -> str:
    lines = [REVIEW_MARKER, f"### Review stack `{opened.stack}`", ""]
    if not opened.models:
        lines.append("This pull request changes no model the local target serves: no review stack was started.")
        return "\n".join(lines) + "\n"
    if opened.result is None or not opened.result.ok:
        code = opened.result.returncode if opened.result else "?"
        tail = "\n".join(opened.result.output.strip().splitlines()[-30:]) if opened.result else ""
        lines += [f"**`pulumi up` of {opened.stack} failed (exit {code})**; the end of its output:", ""]
        lines += ["<details><summary>pulumi up</summary>", "", "```", tail, "```", "</details>", ""]
    else:
        lines.append(f"Up: {', '.join(opened.models)} on ports from {opened.port}; {opened.result.summary()}.")
        lines.append("")
    for model in opened.models:
        if model in smokes:
            lines += [*model_section(model, smokes[model], bases.get(model), base_notes.get(model, "n/a")), ""]
    # Evaluation suites (base → head) are not part of the project yet; they go here when they are.
    lines += ["#### Evaluation, base → head", "", "_pending: the project has no evaluation suites yet._"]
    return "\n".join(lines).rstrip() + "\n"


def closed_comment(closed: Sequence[Closed]) -> str:
    lines = [REVIEW_MARKER, "### Review stacks", ""]
    lines += [f"- `{c.stack}`: {c.reason}" for c in closed] or ["- none to close"]
    return "\n".join(lines) + "\n"
