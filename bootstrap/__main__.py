"""The bootstrap program: one `Bootstrap` from the `llmops-bootstrap:*` settings.

Run once per account by an administrator (README "First AWS deploy"); its outputs are
the repository variables (`llmops bootstrap print-vars`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the project's packages, when the venv has no editable install
    sys.path.insert(0, str(ROOT))

from components.aws.bootstrap import Bootstrap, BootstrapArgs  # noqa: E402
from llmops.bootstrap.jobs import CONFIG_NAMESPACE, BootstrapSettings  # noqa: E402


def read_settings(config: pulumi.Config) -> BootstrapSettings:
    values = {}
    for name, spec in BootstrapSettings.model_fields.items():
        key = spec.alias or name
        value = config.get_object(key) if name == "environments" else config.get(key)
        if value is not None:
            values[key] = value
    region = pulumi.Config("aws").get("region")
    if region is not None:
        values.setdefault("region", region)
    return BootstrapSettings.model_validate(values)


def main() -> None:
    try:
        settings = read_settings(pulumi.Config(CONFIG_NAMESPACE))
    except ValidationError as exc:
        raise pulumi.RunError(f"bootstrap/Pulumi.{pulumi.get_stack()}.yaml: invalid settings:\n{exc}") from None
    bootstrap = Bootstrap("llmops", BootstrapArgs(settings))
    for key, value in bootstrap.outputs.items():
        pulumi.export(key, value)


main()
