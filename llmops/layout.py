"""How an environment's resources are laid out over stacks.

`layout: single` (the default): the environment's stack (`stacks/Pulumi.<env>.yaml`) holds
everything. `layout: split`: that stack becomes the environment's *platform stack* (cluster,
network, GPU pools, shared monitoring) and each model deployed there gets a *model stack*
named `<stack>.<model>`. A model stack has no settings of its own: they are its platform
stack's file narrowed to the model, so nobody writes a stack file per model. Its program
reads the platform's outputs through a `StackReference`.

Model names are DNS labels (no dots) and environment stack names carry none either, so the
first dot of a stack name separates the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llmops.errors import UserError
from llmops.settings import STACK_FILE_PREFIX, StackSettings, load_stack_settings

if TYPE_CHECKING:
    from llmops.registry import Registry

SEPARATOR = "."
# What one stack's program builds: everything (single layout), the shared part or one model.
Part = Literal["all", "platform", "model"]


class LayoutError(UserError, ValueError):
    """A stack name or layout that cannot be deployed; the message says which and why."""


@dataclass(frozen=True)
class ModelStack:
    platform: str  # the environment's stack, whose file holds the settings
    model: str

    @property
    def name(self) -> str:
        return f"{self.platform}{SEPARATOR}{self.model}"


def model_stack_name(platform: str, model: str) -> str:
    return ModelStack(platform, model).name


def parse_model_stack(stack: str) -> ModelStack | None:
    """`prod.llama` -> ModelStack("prod", "llama"); a stack name without a dot -> None."""
    platform, dot, model = stack.partition(SEPARATOR)
    if not dot:
        return None
    if not platform or not model or SEPARATOR in model:
        raise LayoutError(f"stack {stack!r}: a model stack is named <environment stack>.<model>")
    return ModelStack(platform, model)


def is_model_stack(stack: str) -> bool:
    return SEPARATOR in stack


def platform_of(stack: str) -> str:
    """The environment stack whose file holds `stack`'s settings: itself, or a model stack's platform."""
    return stack.partition(SEPARATOR)[0]


def part_of(stack: str, settings: StackSettings) -> Part:
    """What `stack` builds, given the settings of its environment's stack file."""
    if settings.layout == "single":
        if is_model_stack(stack):
            raise LayoutError(
                f"stack {stack}: its environment's stack file says `layout: single`, so the models live in "
                f"that stack; `llmops migrate-stacks` splits it"
            )
        return "all"
    return "model" if is_model_stack(stack) else "platform"


def model_settings(platform: StackSettings, model: str) -> StackSettings:
    """A model stack's settings: its platform stack's, narrowed to the one model."""
    return platform.model_copy(update={"models": [model]})


def model_stack_settings(stacks_dir: Path, stack: str) -> tuple[ModelStack, StackSettings]:
    """A model stack's derived settings, read from its platform stack's file; LayoutError if it has none."""
    ref = parse_model_stack(stack)
    if ref is None:
        raise LayoutError(f"stack {stack}: not a model stack (<environment stack>.<model>)")
    path = stacks_dir / f"{STACK_FILE_PREFIX}{ref.platform}.yaml"
    if not path.is_file():
        raise LayoutError(f"stack {stack}: no stacks/{path.name} holds its environment's settings")
    settings = load_stack_settings(path)
    if settings.layout != "split":
        part_of(stack, settings)  # raises, naming the fix
    return ref, model_settings(settings, ref.model)


def deployed_models(root: Path, settings: StackSettings, registry: Registry | None = None) -> list[str]:
    """The models an environment stack deploys, by name (`registry`: already loaded, else read from `root`)."""
    from llmops.registry import load_registry
    from llmops.settings import load_all_stacks
    from llmops.sizing import stack_deployments

    if registry is None:
        registry = load_registry(root / "models", load_all_stacks(root / "stacks"))
    return sorted(d.name for d in stack_deployments(registry, settings))


def model_stacks(platform: str, settings: StackSettings, deployed: list[str]) -> list[str]:
    """The model stacks of a split environment stack: one per model it deploys (none when single)."""
    if settings.layout != "split":
        return []
    return [model_stack_name(platform, m) for m in sorted(deployed)]


ROOT_NAME = "llmops"  # the Platform component every stack's program registers (components/platform.py)


def model_roots(model: str) -> set[tuple[str, str]]:
    """(type, logical name) of the top-level resources a model owns in its environment's single
    stack: what `llmops migrate-stacks` moves (`pulumi state move` takes their children along).
    tests/mocks/test_split_layout.py holds this list to the Platform's own naming."""
    return {
        ("llmops:model_endpoint:ModelEndpoint", f"{ROOT_NAME}-{model}"),
        ("llmops:training_job:TrainingJob", f"{ROOT_NAME}-{model}-training"),
        ("llmops:evaluation:Evaluation", f"{ROOT_NAME}-{model}-eval"),
        ("llmops:drift_monitor:DriftMonitor", f"{ROOT_NAME}-{model}-drift"),
        # In the environment's monitoring: the model's CloudWatch alarms and its PrometheusRule on EKS.
        ("llmops:aws/monitoring:SloAlarms", f"{ROOT_NAME}-monitoring-{model}"),
        ("kubernetes:monitoring.coreos.com/v1:PrometheusRule", f"{ROOT_NAME}-monitoring-{model}-rules"),
    }


def urn_type_and_name(urn: str) -> tuple[str, str]:
    """`urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>` -> (type, name)."""
    _, _, qualified, name = urn.split("::", 3)
    return qualified.rsplit("$", 1)[-1], name


def owned_by(urns: list[str], model: str) -> list[str]:
    """The URNs among `urns` that are the top-level resources of `model` (model_roots)."""
    roots = model_roots(model)
    return [urn for urn in urns if urn_type_and_name(urn) in roots]


def stack_settings(stacks_dir: Path, stack: str) -> StackSettings:
    """Any stack's settings by name: an environment stack's file, or a model stack's derived ones."""
    if is_model_stack(stack):
        return model_stack_settings(stacks_dir, stack)[1]
    path = stacks_dir / f"{STACK_FILE_PREFIX}{stack}.yaml"
    if not path.is_file():
        names = sorted(
            p.name[len(STACK_FILE_PREFIX) : -len(".yaml")] for p in stacks_dir.glob(f"{STACK_FILE_PREFIX}*.yaml")
        )
        raise LayoutError(f"no stack {stack!r} (stacks/: {', '.join(n for n in names if SEPARATOR not in n)})")
    return load_stack_settings(path)
