"""What one `pulumi preview` or `pulumi up` of one stack produced: changes, changed resources, policy violations.

Filled from the Automation API's typed engine events as they arrive (`RunResult.record`),
or read back from a preview's console text when that is all there is (`parse_preview_text`:
the workflow's `pulumi/actions` step keeps only the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pulumi.automation import EngineEvent

OP_WORDS = {
    "create": "to create",
    "update": "to update",
    "delete": "to delete",
    "replace": "to replace",
    "create-replacement": "to replace",
    "same": "unchanged",
}


COMPONENT_PREFIX = "llmops:"  # the type tokens of the project's component resources


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
    ops: dict[str, str] = field(default_factory=dict, repr=False)  # urn -> op, as the events said

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def has_changes(self) -> bool:
        """Whether anything real would change. A read (a model stack's StackReference, every run)
        changes nothing, nor does an update of a component's inputs: the project's components
        (`llmops:` types) own nothing but their children, and their inputs carry facts for the
        policies (an environment's cost, which any model's change moves in every stack of it)."""
        if self.ops:
            return any(op not in ("same", "read") and not _component_update(urn, op) for urn, op in self.ops.items())
        return any(n for op, n in self.changes.items() if op not in ("same", "read"))

    def summary(self) -> str:
        parts = [f"{n} {OP_WORDS.get(op, op)}" for op, n in sorted(self.changes.items(), key=_op_order) if n]
        return ", ".join(parts) or "no resources"

    def record(self, event: EngineEvent) -> None:
        """Take in one engine event (the Automation API's `on_event`)."""
        if event.summary_event is not None:
            changes = event.summary_event.resource_changes or {}
            self.changes = {_op(k): int(v) for k, v in changes.items()}
        elif event.policy_event is not None:
            p = event.policy_event
            level = "advisory" if p.enforcement_level == "warning" else str(p.enforcement_level)
            self.violations.append(Violation(p.policy_name, level, p.message.strip(), p.resource_urn))
        elif event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            if meta.urn and meta.op:
                self.ops[meta.urn] = _op(meta.op)
                self.changed_urns = sorted(u for u, op in self.ops.items() if op not in ("same", "read"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "command": self.command,
            "returncode": self.returncode,
            "changes": self.changes,
            "violations": [v.__dict__ for v in self.violations],
            "changed_urns": self.changed_urns,
        }


def _component_update(urn: str, op: str) -> bool:
    kind = urn.split("::")[2].rsplit("$", 1)[-1] if urn.count("::") >= 3 else ""
    return op == "update" and kind.startswith(COMPONENT_PREFIX)


def _op(op: Any) -> str:
    return str(getattr(op, "value", op))


def _op_order(item: tuple[str, int]) -> tuple[int, str]:
    order = list(OP_WORDS)
    return (order.index(item[0]) if item[0] in order else len(order), item[0])


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
