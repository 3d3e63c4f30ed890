"""`llmops ci policy`: the policy pack's own validators over a stack's program run under mocks, offline.

An AWS stack cannot be previewed without cloud credentials, and pull requests
from forks never get any. This runs the checkout's real `__main__.py` for the
stack under `pulumi.runtime.set_mocks` (`llmops.ci.mock_runtime`), hands every
resource it registered to `policies.evaluate` (the very policy objects the pack
serves, with properties in the engine's shape), at the levels the stack's
environment sets in `policies/config/<environment>.json`. What it cannot see:
anything only a provider computes (real ARNs, defaults AWS fills in).

A production version's evaluation record is written by `llmops ci deploy` from
the staging endpoint, after the pull request merges; before that, "no record
yet" is expected, so it is reported as *pending* rather than as a violation. A
record that exists and fails stays mandatory.

The validators are the checkout's own `policies/` folder, imported from its root on
purpose (`import_pack`): that folder is what `pulumi preview --policy-pack policies/pack`
serves for the checkout and what `pulumi policy publish` uploads, so it is not part of
the installed package, where a second copy could differ from the one previews run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops.ci.errors import CiError
from llmops.ci.mock_runtime import event_loop, run_program
from llmops.layout import platform_of
from llmops.settings import STACK_FILE_PREFIX, load_stack_settings

PENDING = "pending"


@dataclass(frozen=True)
class Finding:
    policy: str
    level: str
    resource: str  # "<type>::<name>", or "stack" for a stack policy
    message: str

    @property
    def mandatory(self) -> bool:
        return self.level == "mandatory"

    def __str__(self) -> str:
        return f"[{self.level}] {self.policy} ({self.resource}): {self.message}"


@dataclass
class PolicyReport:
    stack: str
    environment: str
    resources: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.findings if f.mandatory]

    @property
    def advisory(self) -> list[Finding]:
        return [f for f in self.findings if f.level not in ("mandatory", PENDING)]

    @property
    def pending(self) -> list[Finding]:
        return [f for f in self.findings if f.level == PENDING]

    @property
    def ok(self) -> bool:
        return not self.mandatory

    def summary(self) -> str:
        verdict = f"{len(self.mandatory)} mandatory" if self.mandatory else "no mandatory"
        pending = f", {len(self.pending)} evaluation record(s) pending the staging deploy" if self.pending else ""
        return f"{verdict}, {len(self.advisory)} advisory policy violation(s) over {self.resources} resources{pending}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyReport:
        findings = [Finding(**f) for f in data.get("findings", [])]
        return cls(data["stack"], data["environment"], data["resources"], findings)

    @classmethod
    def load(cls, path: Path) -> PolicyReport:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


PACK = "policies"  # the pack's folder under the checkout root, and its package name


def import_pack(root: Path) -> None:
    """Import the `policies` package from the checkout `root`, as the pack's own `__main__.py`
    does when the engine serves it (it puts the checkout root first on sys.path)."""
    folder = (root / PACK).resolve()
    loaded = sys.modules.get(PACK)
    if loaded is not None:
        where = Path(loaded.__file__ or "").resolve().parent
        if where != folder:
            raise CiError(f"the policy pack is already loaded from {where}, not from the checkout's {folder}")
        return
    init = folder / "__init__.py"
    spec = importlib.util.spec_from_file_location(PACK, init, submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None or not init.is_file():
        raise CiError(f"no policy pack in {folder} (a `{PACK}/` folder with `__init__.py`)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module  # before running it: its modules import `policies.*` absolutely
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK]
        raise


def policy_config(root: Path, stack: str) -> tuple[str, dict[str, Any]]:
    """The stack's environment and the enforcement levels its preview would run with."""
    import_pack(root)
    from policies.enforcement import PolicyConfigError, config_for_stack, load_config

    stack_file = root / "stacks" / f"{STACK_FILE_PREFIX}{platform_of(stack)}.yaml"  # a model stack: its env's
    if not stack_file.is_file():
        raise CiError(f"no stack file {stack_file}")
    try:
        config_for_stack(stack, root / "stacks")  # refuses a stack file that disagrees with its config
    except PolicyConfigError as exc:
        raise CiError(f"policy configuration of {stack}: {exc}") from None
    environment = load_stack_settings(stack_file).environment
    return environment, load_config(root / "policies" / "config" / f"{environment}.json")


def check_stack(root: Path, stack: str) -> PolicyReport:
    """Every violation the pack reports for `stack` of the checkout `root`, without the engine or a cloud."""
    import pulumi

    import_pack(root)
    from policies.evaluate import Resource, evaluate

    environment, config = policy_config(root, stack)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # sizing reads the registry's config files, never the Hub
    try:
        with event_loop():
            graph = run_program(root, stack)
    except pulumi.RunError as exc:
        raise CiError(f"the program of {stack} failed under mocks: {exc}") from None
    resources = [
        Resource(r.type, r.name, r.inputs, r.urn, r.parent or None, property_dependencies=r.property_dependencies)
        for r in graph.resources
    ]
    findings = [
        Finding(v.policy, _level(v.policy, v.level, v.message), _where(v.urn), v.message)
        for v in evaluate(resources, config, stack=stack)
    ]
    return PolicyReport(stack, environment, len(resources), findings)


def _where(urn: str | None) -> str:
    return "::".join(urn.split("::")[-2:]) if urn else "stack"


def _level(policy: str, level: str, message: str) -> str:
    """A missing evaluation record is pending before the deploy measures it on staging (see above)."""
    from policies.intent import NOT_YET_RECORDED  # the pack's own marker for that case

    return PENDING if policy == "evaluation-gate" and NOT_YET_RECORDED in message else level
