"""The Pulumi program: one Platform per stack, from the registry and the stack's settings.

An environment's stack (`layout: single`) builds everything; split (`llmops.layout`), it builds
the platform and each model stack `<env>.<model>` builds one model. A model stack's settings
are its environment's stack file narrowed to the model, read from that file.

An environment stack's settings are read through `pulumi.Config`, as every Pulumi program reads them, so
the program runs unchanged under the engine, an Automation API workspace and
`pulumi.runtime.set_mocks` + `set_all_config` (tests/mocks/harness.py).
"""

from __future__ import annotations

from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import pulumi
from pydantic import BaseModel, ValidationError

from components.context import StackContext
from components.platform import Platform, PlatformArgs
from llmops.errors import UserError
from llmops.layout import is_model_stack, model_stack_settings, part_of
from llmops.registry import RegistryError, load_registry
from llmops.settings import CONFIG_NAMESPACE, StackSettings, load_all_stacks
from llmops.sizing import SizingError

ROOT = Path(__file__).resolve().parent
# Settings whose value is secret: read as secret Outputs and kept out of the plain settings.
SECRET_KEYS = ("alarmEmail",)


def _structured(annotation: Any) -> bool:
    """Settings the engine hands over as JSON text: nested models and lists (optional ones too)."""
    if get_origin(annotation) in (Union, UnionType):
        return any(_structured(a) for a in get_args(annotation) if a is not NoneType)
    return get_origin(annotation) is list or (isinstance(annotation, type) and issubclass(annotation, BaseModel))


def read_settings(config: pulumi.Config) -> tuple[StackSettings, dict[str, pulumi.Output[str]]]:
    """The stack's `llmops:*` settings (validated by the same model the core tools use) and its secrets."""
    values: dict[str, Any] = {}
    for name, spec in StackSettings.model_fields.items():
        key = spec.alias or name
        if key in SECRET_KEYS:
            continue
        if spec.is_required():
            values[key] = config.require_object(key) if _structured(spec.annotation) else config.require(key)
            continue
        value = config.get_object(key) if _structured(spec.annotation) else config.get(key)
        if value is not None:
            values[key] = value
    region = pulumi.Config("aws").get("region")
    if region is not None:
        values.setdefault("region", region)
    secrets = {key: value for key in SECRET_KEYS if (value := config.get_secret(key)) is not None}
    return StackSettings.model_validate(values), secrets


def main() -> None:
    stack = pulumi.get_stack()
    secrets: dict[str, pulumi.Output[str]] = {}
    try:
        if is_model_stack(stack):
            ref, settings = model_stack_settings(ROOT / "stacks", stack)
            settings_stack = ref.platform
        else:
            settings, secrets = read_settings(pulumi.Config(CONFIG_NAMESPACE))
            settings_stack = stack
        part = part_of(stack, settings)
    except ValidationError as exc:
        raise pulumi.RunError(f"stacks/Pulumi.{stack}.yaml: invalid llmops settings:\n{exc}") from None
    except UserError as exc:
        raise pulumi.RunError(str(exc)) from None
    try:
        registry = load_registry(ROOT / "models", load_all_stacks(ROOT / "stacks"))
    except RegistryError as exc:
        raise pulumi.RunError(f"the model registry has problems:\n{exc}") from None
    context = StackContext(settings_stack, settings, ROOT, alarm_email=secrets.get("alarmEmail"), part=part)
    try:
        platform = Platform("llmops", PlatformArgs(context, registry))
    except SizingError as exc:
        raise pulumi.RunError(f"sizing failed: {exc}") from None
    for key, value in platform.outputs.items():
        pulumi.export(key, value)


main()
