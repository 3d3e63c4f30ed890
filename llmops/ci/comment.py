"""The pull request comment: the plan, each stack's preview summary, and the monthly cost before → after."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmops.ci.offline_policy import PolicyReport
from llmops.ci.results import RunResult, Violation, parse_preview_text
from llmops.gitrepo import GitError, git
from llmops.plan import AffectedStack, Plan

COMMENT_MARKER = "<!-- llmops:pr-comment -->"
DIFF_LIMIT = 12_000  # characters of diff per stack in a PR comment (GitHub caps a comment at 65,536)


@contextlib.contextmanager
def checkout(root: Path, rev: str) -> Iterator[Path]:
    """A throwaway worktree of `rev` (the base of a pull request, for its cost)."""
    tmp = Path(tempfile.mkdtemp(prefix="llmops-tree-"))
    tree = tmp / "tree"
    try:
        git(root, "worktree", "add", "--detach", "--quiet", str(tree), rev)
        yield tree
    finally:
        with contextlib.suppress(GitError):
            git(root, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(GitError):
            git(root, "worktree", "prune")


@dataclass(frozen=True)
class CostCell:
    usd: float | None
    note: str = ""


def cost_by_stack(tree: Path, stacks: Sequence[str]) -> tuple[dict[str, CostCell], list[str]]:
    """Monthly cost of `stacks` in the checkout `tree` (a cell says why when there is none)."""
    from llmops.cost import costs
    from llmops.errors import UserError

    try:
        result, warnings = costs(tree)
    except UserError as exc:
        return {s: CostCell(None, str(exc)) for s in stacks}, []
    cells = {
        s: CostCell(result[s].total_monthly_usd) if s in result else CostCell(None, "no such stack") for s in stacks
    }
    return cells, warnings


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "n/a"
    delta = after - before
    if abs(delta) < 0.005:
        return "no change"
    pct = f" ({delta / before:+.1%})" if before else ""
    return f"{'+' if delta > 0 else '-'}${abs(delta):,.2f}{pct}"


def cost_table(root: Path, plan: Plan, stacks: Sequence[AffectedStack]) -> list[str]:
    """Monthly cost before → after per environment stack the change reaches. A model stack
    (llmops.layout) is costed as its whole environment, which is what its budget spans."""
    from llmops.settings import load_all_stacks

    rows: dict[str, list[AffectedStack]] = {}
    for stack in stacks:
        rows.setdefault(stack.platform, []).append(stack)
    names = list(rows)
    with checkout(root, plan.base) as base_tree:
        before, warn_before = cost_by_stack(base_tree, names)
    with checkout(root, plan.head) as head_tree:
        after, warn_after = cost_by_stack(head_tree, names)
        budgets = {n: s.budget_monthly_usd for n, s in load_all_stacks(head_tree / "stacks").items()}
    lines = [
        "| Stack | Environment | Before | After | Change | Budget |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, reached in rows.items():
        b, a = before[name], after[name]
        budget = budgets.get(name, 0.0)
        over = " **over budget**" if a.usd is not None and budget > 0 and a.usd > budget else ""
        models = [s.stack for s in reached if s.model is not None]
        shown = f"{name} (whole, for {', '.join(models)})" if models else name
        lines.append(
            f"| {shown} | {reached[0].environment or '?'} | {_usd(b.usd)} | {_usd(a.usd)}{over} | "
            f"{_change(b.usd, a.usd)} | {_usd(budget) if budget > 0 else 'none'} |"
        )
    notes = [f"{s}: {c.note}" for s, c in {**before, **after}.items() if c.note]
    notes += [f"left out at base (invalid there): {f}" for f in warn_before]
    notes += [f"left out at head (invalid there): {f}" for f in warn_after]
    lines += [f"\n_{note}_" for note in dict.fromkeys(notes)]
    return lines


def _fence(text: str) -> str:
    """A fence longer than any backtick run in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def preview_section(result: RunResult) -> list[str]:
    blocking = [v for v in result.violations if v.blocking]
    advisory = [v for v in result.violations if not v.blocking]
    status = "failed" if not result.ok else "ok"
    policy = f"**{len(blocking)} mandatory policy violation(s)**" if blocking else "no mandatory policy violations"
    if advisory:
        policy += f", {len(advisory)} advisory"
    lines = [f"**{result.stack}**: preview {status}, {result.summary()}; {policy}"]
    lines += [
        f"- `[{v.level}]` {v.policy}: {v.message.splitlines()[0] if v.message else ''}" for v in result.violations
    ]
    text = result.output.strip()
    if len(text) > DIFF_LIMIT:
        text = text[:DIFF_LIMIT] + f"\n… ({len(result.output) - DIFF_LIMIT} more characters in the job log)"
    fence = _fence(text)
    lines += ["", f"<details><summary>{result.stack} preview</summary>", "", f"{fence}diff", text, fence, "</details>"]
    return lines


def policy_section(report: PolicyReport) -> list[str]:
    """The offline policy check of one stack (program under mocks, the pack's validators)."""
    lines = [f"**{report.stack}**: offline policy check: {'ok' if report.ok else 'FAILED'}, {report.summary()}"]
    lines += [f"- `[{f.level}]` {f.policy} ({f.resource}): {f.message.splitlines()[0]}" for f in report.findings]
    return lines


def pr_comment(
    root: Path,
    plan: Plan,
    stacks: Sequence[AffectedStack],
    previews: dict[str, RunResult],
    policy: dict[str, PolicyReport] | None = None,
) -> str:
    lines = [COMMENT_MARKER, f"### LLMOps plan: `{plan.base[:12]}` → `{plan.head[:12]}`", ""]
    if not stacks:
        lines.append("No stack is affected by this change.")
        lines += [f"- {label}" for label in plan.ignored[:20]]
        return "\n".join(lines) + "\n"
    lines += ["| # | Stack | Environment | Why |", "| --- | --- | --- | --- |"]
    for i, stack in enumerate(stacks, 1):
        why = "<br>".join(stack.reasons[:5]) + (
            f"<br>… and {len(stack.reasons) - 5} more" if len(stack.reasons) > 5 else ""
        )
        order = str(i) if stack.promotion else "on its own"
        lines.append(f"| {order} | {stack.stack} | {stack.environment or '?'} | {why} |")
    lines += ["", "#### Monthly cost (on-demand), base → head", ""]
    lines += cost_table(root, plan, stacks)
    lines += ["", "#### Previews (policy pack enforced)", ""]
    for stack in stacks:
        if policy and stack.stack in policy:
            lines += [*policy_section(policy[stack.stack]), ""]
        result = previews.get(stack.stack)
        lines += preview_section(result) if result else [f"**{stack.stack}**: no preview was run"]
        lines.append("")
    lines += [f"_Note: {note}_" for note in plan.notes]
    return "\n".join(lines).rstrip() + "\n"


def load_previews(directory: Path, stacks: Sequence[AffectedStack]) -> dict[str, RunResult]:
    """Previews saved by `ci preview --out` (<stack>.json + .txt) or by the workflow (<stack>.txt only)."""
    out: dict[str, RunResult] = {}
    for stack in stacks:
        text_file, json_file = directory / f"{stack.stack}.txt", directory / f"{stack.stack}.json"
        text = text_file.read_text(encoding="utf-8", errors="replace") if text_file.is_file() else ""
        if json_file.is_file():
            data = json.loads(json_file.read_text())
            out[stack.stack] = RunResult(
                stack.stack,
                data["command"],
                data["returncode"],
                text,
                data["changes"],
                [Violation(**v) for v in data["violations"]],
                data.get("changed_urns", []),
            )
        elif text_file.is_file():
            result = parse_preview_text(stack.stack, text)
            outcome = directory / f"{stack.stack}.outcome"  # the workflow step's outcome, when it kept one
            if outcome.is_file() and outcome.read_text().strip() not in ("success", ""):
                result.returncode = result.returncode or 1
            out[stack.stack] = result
    return out


def load_policy_reports(directory: Path, stacks: Sequence[AffectedStack]) -> dict[str, PolicyReport]:
    """Reports `ci policy --out` saved (<stack>.policy.json); a stack without one is left out."""
    files = {s.stack: directory / f"{s.stack}.policy.json" for s in stacks}
    return {stack: PolicyReport.load(path) for stack, path in files.items() if path.is_file()}


def save_previews(directory: Path, results: Sequence[RunResult]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for result in results:
        (directory / f"{result.stack}.txt").write_text(result.output, encoding="utf-8")
        (directory / f"{result.stack}.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
