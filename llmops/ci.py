"""`llmops ci …`: the steps the GitHub workflows run, runnable the same way on a laptop.

- `ci plan`: the affected stacks; in GitHub Actions also step outputs and a job summary.
- `ci preview`: `pulumi preview` under the policy pack for each affected stack.
- `ci deploy`: validate the registry, plan, then per affected stack in promotion
  order a policy-checked preview (a violation stops everything before any
  change) and `pulumi up`; the first failure stops the rest.
- `ci pr-comment`: the pull request comment: plan, preview summaries, and the
  monthly cost of each affected stack before (base) and after (head).
- `ci drift`: `pulumi preview --refresh --expect-no-changes`; a report when
  what runs differs from the stack's state.

Pulumi runs from this checkout's engine (`llmops.engine`), with the policy pack
executable `policies/pack` and `policies/config/<environment>.json`; both are
parameters. Each run keeps the engine's event log, so results (changes, policy
violations) are read from structured events, not from the console text.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.plan import AffectedStack, GitError, Plan, add_range_arguments, git, plan_from_args, resolve

DEFAULT_POLICY_PACK = "policies/pack"
DEFAULT_POLICY_CONFIG_DIR = "policies/config"
COMMENT_MARKER = "<!-- llmops:pr-comment -->"
DIFF_LIMIT = 12_000  # characters of diff per stack in a PR comment (GitHub caps a comment at 65,536)
OP_WORDS = {
    "create": "to create",
    "update": "to update",
    "delete": "to delete",
    "replace": "to replace",
    "create-replacement": "to replace",
    "same": "unchanged",
}
EXIT_DRIFT = 2


class CiError(Exception):
    """A step failed; the message says which and why."""


# --------------------------------------------------------------------------- pulumi runs


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str  # mandatory, advisory (warning), remediate, disabled
    message: str
    resource: str | None = None

    @property
    def blocking(self) -> bool:
        return self.level == "mandatory"


@dataclass
class RunResult:
    """One `pulumi preview` or `pulumi up` of one stack."""

    stack: str
    command: str
    returncode: int
    output: str
    changes: dict[str, int] = field(default_factory=dict)  # op -> count, as the engine summarises
    violations: list[Violation] = field(default_factory=list)
    changed_urns: list[str] = field(default_factory=list)  # resources with an op other than `same`

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def has_changes(self) -> bool:
        return any(n for op, n in self.changes.items() if op != "same")

    def summary(self) -> str:
        parts = [f"{n} {OP_WORDS.get(op, op)}" for op, n in sorted(self.changes.items(), key=_op_order) if n]
        return ", ".join(parts) or "no resources"

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "command": self.command,
            "returncode": self.returncode,
            "changes": self.changes,
            "violations": [v.__dict__ for v in self.violations],
            "changed_urns": self.changed_urns,
        }


def _op_order(item: tuple[str, int]) -> tuple[int, str]:
    order = list(OP_WORDS)
    return (order.index(item[0]) if item[0] in order else len(order), item[0])


def read_event_log(path: Path, result: RunResult) -> None:
    """Fill `result` from the engine's JSON-lines event log (`--event-log`)."""
    if not path.is_file():
        return
    ops: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "summaryEvent" in event:
            result.changes = {k: int(v) for k, v in (event["summaryEvent"].get("resourceChanges") or {}).items()}
        elif "policyEvent" in event:
            p = event["policyEvent"]
            if p.get("exceptions"):
                continue  # an approved exception: reported by the engine, never blocking
            level = "advisory" if p.get("enforcementLevel") == "warning" else str(p.get("enforcementLevel", ""))
            message = str(p.get("message", "")).strip()
            result.violations.append(Violation(str(p.get("policyName", "")), level, message, p.get("resourceUrn")))
        elif "resourcePreEvent" in event:
            meta = event["resourcePreEvent"].get("metadata") or {}
            if meta.get("urn") and meta.get("op"):
                ops[str(meta["urn"])] = str(meta["op"])
    result.changed_urns = sorted(urn for urn, op in ops.items() if op not in ("same", "read"))


_SUMMARY_LINE = re.compile(r"^\s*[-+~±<>]*\s*(\d+) (to create|to update|to delete|to replace|unchanged)\s*$")
# `    - [mandatory] [severity: high]  policy-name  (type: name)`; exempted ones start `[exempted…]`.
_POLICY_LINE = re.compile(
    r"^\s*-\s*\[(mandatory|advisory|remediate|disabled)\](?:\s*\[severity: \w+\])?\s+(\S+)\s*(.*)$"
)


def parse_preview_text(stack: str, text: str) -> RunResult:
    """A preview's console text (as `pulumi/actions` returns it) read back into a result."""
    words = {v: k for k, v in reversed(OP_WORDS.items())}
    result = RunResult(stack, "preview", 0, text)
    in_resources = False
    for line in text.splitlines():
        if line.strip() == "Resources:":
            in_resources = True
            continue
        if in_resources:
            if m := _SUMMARY_LINE.match(line):
                op = words[m.group(2)]
                result.changes[op] = result.changes.get(op, 0) + int(m.group(1))
                continue
            if line.strip():
                in_resources = False
        if m := _POLICY_LINE.match(line):
            result.violations.append(Violation(m.group(2), m.group(1), m.group(3).strip()))
    if any(v.blocking for v in result.violations) or "error:" in text:
        result.returncode = 1
    return result


@dataclass(frozen=True)
class Engine:
    """How this checkout runs pulumi: where, with which environment and policy pack."""

    root: Path
    env: dict[str, str]
    policy_pack: str
    policy_config_dir: str
    timeout: float | None = None
    stream: bool = True  # echo pulumi's output while it runs (CI logs)

    def policy_args(self, environment: str | None) -> list[str]:
        args = ["--policy-pack", self.policy_pack]
        if environment is not None:
            config = Path(self.policy_config_dir) / f"{environment}.json"
            if not (self.root / config).is_file():
                raise CiError(f"no policy configuration {config} for environment {environment!r}")
            args += ["--policy-pack-config", str(config)]
        return args

    def pulumi(self, args: Sequence[str], *, echo: bool | None = None) -> tuple[int, str]:
        """Run the checkout's pulumi; output is captured, and echoed line by line when streaming."""
        from llmops.engine import pulumi_binary

        echo = self.stream if echo is None else echo
        cmd = [pulumi_binary(self.root), *args, "--non-interactive"]
        proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            # `--event-log` is a flag of every operation only with debug commands on (as the
            # Automation API runs the CLI); it adds hidden commands and flags, nothing else.
            env={**self.env, "PULUMI_DEBUG_COMMANDS": "true"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        lines: list[str] = []
        assert proc.stdout is not None
        try:
            with contextlib.suppress(ValueError):
                for line in proc.stdout:
                    lines.append(line)
                    if echo:
                        sys.stdout.write(line)
                        sys.stdout.flush()
            returncode = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            lines.append(f"\nllmops ci: pulumi {args[0]} timed out after {self.timeout} s\n")
            returncode = 124
        return returncode, "".join(lines)

    def select(self, stack: str) -> None:
        """Select `stack`; a local-target stack is created on first use, a cloud one never is
        (it was created once with its KMS secrets provider; a guess here would be wrong)."""
        code, out = self.pulumi(["stack", "select", stack], echo=False)
        if code == 0:
            return
        if stack_targets(self.root).get(stack) == "local":
            code, out = self.pulumi(["stack", "init", stack], echo=False)
            if code == 0:
                return
        last = out.strip().splitlines()[-1] if out.strip() else f"exit status {code}"
        raise CiError(
            f"cannot select stack {stack} ({last}); a cloud stack is created once by hand: "
            f"`pulumi stack init {stack} --secrets-provider <its secretsprovider in stacks/Pulumi.{stack}.yaml>`"
        )

    def run(self, command: str, stack: str, environment: str | None, extra: Sequence[str] = ()) -> RunResult:
        """`pulumi preview|up` of one stack under the policy pack, read back from its event log."""
        with tempfile.TemporaryDirectory(prefix="llmops-ci-") as tmp:
            log = Path(tmp) / "events.jsonl"
            args = [command, "--stack", stack, "--color", "never", "--suppress-progress"]
            args += ["--event-log", str(log), *self.policy_args(environment), *extra]
            code, output = self.pulumi(args)
            result = RunResult(stack, command, code, output)
            read_event_log(log, result)
        return result

    def preview(self, stack: str, environment: str | None, *, refresh: bool = False) -> RunResult:
        extra = ["--diff"] + (["--refresh", "--expect-no-changes"] if refresh else [])
        return self.run("preview", stack, environment, extra)

    def up(self, stack: str, environment: str | None) -> RunResult:
        # The preview just before has checked the policies; the pack runs again during the update.
        return self.run("up", stack, environment, ["--yes", "--skip-preview"])


def engine_from_args(args: argparse.Namespace, root: Path) -> Engine:
    from llmops.engine import engine_env

    return Engine(
        root=root,
        env=engine_env(root),
        policy_pack=args.policy_pack,
        policy_config_dir=args.policy_config_dir,
        timeout=args.timeout,
        stream=not getattr(args, "quiet", False),
    )


# --------------------------------------------------------------------------- selection


def stack_targets(root: Path) -> dict[str, str]:
    """Stack -> target (aws, local) from the checkout's stack files."""
    from llmops.settings import load_all_stacks

    return {name: s.target for name, s in load_all_stacks(root / "stacks").items()}


def select_stacks(plan: Plan, root: Path, only: Sequence[str], target: str | None) -> list[AffectedStack]:
    """The plan's stacks, in its order, narrowed to `only` (names) and `target`."""
    targets = stack_targets(root) if target else {}
    chosen = [
        s for s in plan.stacks if (not only or s.stack in only) and (not target or targets.get(s.stack) == target)
    ]
    for name in only:
        if name not in plan.names:
            print(f"llmops ci: stack {name} is not affected by this change; nothing to do for it")
    return chosen


def check_checkout(root: Path, plan: Plan) -> None:
    """Pulumi deploys the files on disk: they must be the planned head."""
    if resolve(root, "HEAD") != plan.head:
        raise CiError(
            f"the checkout is at {resolve(root, 'HEAD')[:12]}, not the head {plan.head[:12]}: check it out first"
        )
    dirty = git(root, "status", "--porcelain", "--untracked-files=no").decode().strip()
    if dirty:
        print(f"llmops ci: warning: tracked files differ from {plan.head[:12]}:\n{dirty}", file=sys.stderr)


def validate_registry(root: Path) -> None:
    from llmops.registry import validate
    from llmops.settings import load_all_stacks

    _, problems = validate(root / "models", load_all_stacks(root / "stacks"))
    if problems:
        raise CiError("the registry has problems:\n" + "\n".join(f"  {p}" for p in problems))
    print("registry OK")


# --------------------------------------------------------------------------- deploy


def deploy(
    engine: Engine,
    stacks: Sequence[AffectedStack],
    *,
    dry_run: bool = False,
    results: list[RunResult] | None = None,
    after_update: Callable[[AffectedStack], None] | None = None,
) -> list[RunResult]:
    """Preview then update each stack in order; stop at the first failure (raises CiError).
    Every run is appended to `results` as it finishes, failures included. `after_update` runs
    after each stack's update (the staging evaluation gate) and stops the promotion by raising."""
    results = [] if results is None else results
    for stack in stacks:
        print(f"\n=== {stack.stack} ({stack.environment}): preview under policy")
        engine.select(stack.stack)
        preview = engine.preview(stack.stack, stack.environment)
        results.append(preview)
        blocking = [v for v in preview.violations if v.blocking]
        if not preview.ok or blocking:
            why = f"{len(blocking)} mandatory policy violation(s)" if blocking else f"exit status {preview.returncode}"
            detail = "".join(f"\n  [{v.level}] {v.policy}: {v.message}" for v in blocking)
            raise CiError(f"preview of {stack.stack} failed ({why}); nothing was changed{detail}")
        print(f"=== {stack.stack}: preview {preview.summary()}")
        if dry_run:
            continue
        print(f"=== {stack.stack}: up")
        update = engine.up(stack.stack, stack.environment)
        results.append(update)
        if not update.ok:
            raise CiError(f"update of {stack.stack} failed (exit status {update.returncode}); later stacks skipped")
        print(f"=== {stack.stack}: updated, {update.summary()}")
        if after_update is not None:
            after_update(stack)
    return results


# --------------------------------------------------------------------------- PR comment


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
    from llmops.settings import load_all_stacks

    names = [s.stack for s in stacks]
    with checkout(root, plan.base) as base_tree:
        before, warn_before = cost_by_stack(base_tree, names)
    with checkout(root, plan.head) as head_tree:
        after, warn_after = cost_by_stack(head_tree, names)
        budgets = {n: s.budget_monthly_usd for n, s in load_all_stacks(head_tree / "stacks").items()}
    lines = [
        "| Stack | Environment | Before | After | Change | Budget |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for stack in stacks:
        b, a = before[stack.stack], after[stack.stack]
        budget = budgets.get(stack.stack, 0.0)
        over = " **over budget**" if a.usd is not None and budget > 0 and a.usd > budget else ""
        lines.append(
            f"| {stack.stack} | {stack.environment or '?'} | {_usd(b.usd)} | {_usd(a.usd)}{over} | "
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


def pr_comment(root: Path, plan: Plan, stacks: Sequence[AffectedStack], previews: dict[str, RunResult]) -> str:
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


def save_previews(directory: Path, results: Sequence[RunResult]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for result in results:
        (directory / f"{result.stack}.txt").write_text(result.output, encoding="utf-8")
        (directory / f"{result.stack}.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")


# --------------------------------------------------------------------------- GitHub glue


def github_output(**values: str) -> None:
    """Step outputs, when running in GitHub Actions."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for key, value in values.items():
            delimiter = f"llmops_{os.urandom(8).hex()}"
            out.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")


def github_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")


# --------------------------------------------------------------------------- commands


def _common(p: argparse.ArgumentParser, *, ranged: bool = True) -> None:
    if ranged:
        add_range_arguments(p)
    p.add_argument("--stack", action="append", default=[], dest="only", help="only this affected stack (repeatable)")
    p.add_argument("--target", choices=("aws", "local"), help="only stacks of this target (CI: aws)")
    p.add_argument("--policy-pack", default=DEFAULT_POLICY_PACK, help="policy pack path (an executable analyzer)")
    p.add_argument("--policy-config-dir", default=DEFAULT_POLICY_CONFIG_DIR, help="holds <environment>.json")
    p.add_argument("--timeout", type=float, default=None, help="seconds per pulumi command")
    p.add_argument("--quiet", action="store_true", help="do not echo pulumi's output")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ci = sub.add_parser("ci", help="the CI steps: plan, preview, deploy, pr-comment, drift")
    ci_sub = ci.add_subparsers(dest="ci_command", required=True, metavar="STEP")

    p = ci_sub.add_parser("plan", help="affected stacks; step outputs `stacks`, `matrix` and `any` in GitHub")
    add_range_arguments(p)
    p.add_argument("--target", choices=("aws", "local"), help="only stacks of this target")
    p.set_defaults(func=cmd_plan)

    p = ci_sub.add_parser("preview", help="policy-checked preview of each affected stack")
    _common(p)
    p.add_argument("--out", type=Path, help="save <stack>.txt (console) and <stack>.json (results) here")
    p.set_defaults(func=cmd_preview)

    p = ci_sub.add_parser("deploy", help="validate, plan, then preview and up each affected stack in order")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="validate, plan and preview only")
    p.add_argument("--report", type=Path, help="write every run's results (changes, resources, violations) as JSON")
    p.set_defaults(func=cmd_deploy)

    p = ci_sub.add_parser("pr-comment", help="markdown for the pull request: plan, previews, cost before → after")
    _common(p)
    p.add_argument("--previews", type=Path, help="read previews saved in this folder instead of running them")
    p.add_argument("--output", type=Path, help="write the markdown here (default: stdout)")
    p.set_defaults(func=cmd_pr_comment)

    p = ci_sub.add_parser("drift", help="refresh-preview each stack; exit 2 and a report when anything drifted")
    _common(p, ranged=False)
    p.add_argument("--repo", type=Path, default=None, help="the checkout (default: this project)")
    p.add_argument("--report", type=Path, help="write the markdown report here when drift is found")
    p.set_defaults(func=cmd_drift)


def _fail(exc: Exception) -> None:
    from llmops.errors import UserError

    lines = str(exc).splitlines()
    if len(lines) > 1:
        print("\n".join(lines[1:]), file=sys.stderr)
    raise UserError(lines[0]) from None


def _render_plan(plan: Plan) -> str:
    from llmops.plan import render

    return render(plan)


def cmd_plan(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    stacks = select_stacks(plan, root, [], args.target)
    print(_render_plan(plan))
    names = [s.stack for s in stacks]
    matrix = {
        "include": [
            {
                "stack": s.stack,
                "environment": s.environment,
                "policy_config": f"{DEFAULT_POLICY_CONFIG_DIR}/{s.environment}.json",
            }
            for s in stacks
        ]
    }
    github_output(stacks=json.dumps(names), matrix=json.dumps(matrix), any=str(bool(names)).lower())
    github_summary(f"### Plan\n\n```\n{_render_plan(plan)}\n```")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    engine = engine_from_args(args, root)
    results = []
    try:
        for stack in select_stacks(plan, root, args.only, args.target):
            engine.select(stack.stack)
            results.append(engine.preview(stack.stack, stack.environment))
    except CiError as exc:
        _fail(exc)
    if args.out:
        save_previews(args.out, results)
    for result in results:
        status = "ok" if result.ok else "FAILED"
        print(f"{result.stack}: {status}, {result.summary()}, {len(result.violations)} policy violation(s)")
    return 0 if all(r.ok for r in results) else 1


def _staging_gate(root: Path) -> Callable[[AffectedStack], None]:
    """After staging's update: its hosted models' suites against the staging endpoints (llmops.evaluation.staging)."""

    def gate(stack: AffectedStack) -> None:
        from llmops.evaluation.staging import STAGING, StagingGateFailed, staging_gate

        if stack.environment != STAGING:
            return
        import boto3

        from llmops.evaluation.weights import stack_outputs

        outputs = stack_outputs(root, stack.stack)
        try:
            staging_gate(root, stack.stack, stack.environment, outputs, boto3.client("sagemaker-runtime"), print)
        except StagingGateFailed as exc:
            raise CiError(str(exc)) from None

    return gate


def cmd_deploy(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    results: list[RunResult] = []
    try:
        check_checkout(root, plan)
        validate_registry(root)
        print(_render_plan(plan))
        stacks = select_stacks(plan, root, args.only, args.target)
        if not stacks:
            print("nothing to deploy")
            return 0
        deploy(
            engine_from_args(args, root),
            stacks,
            dry_run=args.dry_run,
            results=results,
            after_update=_staging_gate(root),
        )
    except CiError as exc:
        _fail(exc)
    finally:
        if args.report:
            report = {"plan": plan.to_dict(), "runs": [r.to_dict() for r in results]}
            args.report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\n{'previewed' if args.dry_run else 'deployed'}: {', '.join(s.stack for s in stacks)}")
    return 0


def cmd_pr_comment(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    stacks = select_stacks(plan, root, args.only, args.target)
    try:
        if args.previews:
            previews = load_previews(args.previews, stacks)
        else:
            engine = engine_from_args(args, root)
            previews = {}
            for stack in stacks:
                engine.select(stack.stack)
                previews[stack.stack] = engine.preview(stack.stack, stack.environment)
        body = pr_comment(root, plan, stacks, previews)
    except (CiError, GitError) as exc:
        _fail(exc)
    if args.output:
        args.output.write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)
    return 0


def drift_report(results: Sequence[RunResult]) -> str:
    lines = [
        "Scheduled `pulumi preview --refresh --expect-no-changes` found differences between what runs and",
        "the stacks' state.",
        "",
    ]
    for result in results:
        lines += [*preview_section(result), ""]
    return "\n".join(lines)


def cmd_drift(args: argparse.Namespace) -> int:
    from llmops.paths import repo_root
    from llmops.settings import load_all_stacks

    root = (args.repo or repo_root()).resolve()
    engine = engine_from_args(args, root)
    settings = load_all_stacks(root / "stacks")
    names = [n for n in sorted(settings) if (not args.only or n in args.only)]
    names = [n for n in names if not args.target or settings[n].target == args.target]
    drifted: list[RunResult] = []
    try:
        for name in names:
            engine.select(name)
            result = engine.preview(name, settings[name].environment, refresh=True)
            if result.has_changes:
                drifted.append(result)
            elif not result.ok:
                raise CiError(f"refresh preview of {name} failed (exit status {result.returncode})")
            print(f"{name}: {'DRIFT, ' if result.has_changes else 'no drift, '}{result.summary()}")
    except CiError as exc:
        _fail(exc)
    github_output(drift=str(bool(drifted)).lower(), stacks=json.dumps([r.stack for r in drifted]))
    if not drifted:
        return 0
    report = drift_report(drifted)
    if args.report:
        args.report.write_text(report, encoding="utf-8")
    github_summary(report)
    return EXIT_DRIFT


__all__ = ["CiError", "Engine", "RunResult", "Violation", "deploy", "pr_comment", "resolve"]
