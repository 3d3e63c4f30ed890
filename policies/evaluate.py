"""Run the pack's policies over resources without the engine.

The AWS stacks cannot be previewed here (no cloud provider plugin), so their
mocks tests hand the resources their program registered to `evaluate`, which
calls the very policy objects the pack serves, with properties shaped the way
the engine shapes them (protobuf round trip: numbers become floats, `None`
inputs disappear, read-only proxies), in registration order, then the stack
policies, at the levels an environment's config file sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import (
    SPECIAL_ARCHIVE_SIG,
    SPECIAL_ASSET_SIG,
    SPECIAL_SIG_KEY,
    deserialize_properties,
)
from pulumi_policy.proxy import unknown_checking_proxy

from policies.enforcement import level_of
from policies.policy_set import DEFAULT_ENFORCEMENT, build_policies


@dataclass(frozen=True)
class Resource:
    """One registered resource: its type, name and inputs (camelCase), optionally where it sits."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    parent: str | None = None
    outputs: Mapping[str, Any] | None = None  # what stack policies see; the inputs when not given
    provider_props: Mapping[str, Any] | None = None
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    urn: str
    message: str

    def __str__(self) -> str:
        where = "::".join(self.urn.split("::")[-2:]) if self.urn else "stack"
        return f"[{self.level}] {self.policy} ({where}): {self.message}"


def engine_shape(props: Mapping[str, Any]) -> Any:
    """`props` as the analyzer receives them: through a protobuf Struct, behind proxies."""
    struct = struct_pb2.Struct()
    struct.update(_drop_none(dict(props)))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def _wire_asset(value: pulumi.Asset | pulumi.Archive) -> dict[str, Any]:
    if isinstance(value, pulumi.AssetArchive):
        return {SPECIAL_SIG_KEY: SPECIAL_ARCHIVE_SIG, "assets": {k: _wire_asset(a) for k, a in value.assets.items()}}
    sig = SPECIAL_ASSET_SIG if isinstance(value, pulumi.Asset) else SPECIAL_ARCHIVE_SIG
    for kind in ("path", "text", "uri"):
        if (found := getattr(value, kind, None)) is not None:
            return {SPECIAL_SIG_KEY: sig, kind: found}
    raise TypeError(f"an asset or archive of an unknown kind: {type(value).__name__}")


def _drop_none(value: Any) -> Any:
    """Nones dropped, assets and archives in the engine's wire form (what the analyzer deserialises)."""
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return _wire_asset(value)
    if isinstance(value, Mapping):
        return {str(k): _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return value


def urn_of(resource: Resource, stack: str, project: str) -> str:
    return resource.urn or f"urn:pulumi:{stack}::{project}::{resource.type}::{resource.name}"


def _levels(policies: Iterable[Policy], config: Mapping[str, Any] | None) -> dict[str, str]:
    config = config or {}
    default = level_of(config.get("all")) or DEFAULT_ENFORCEMENT.value
    return {p.name: level_of(config.get(p.name)) or default for p in policies}


def resource_options(parent: str | None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def evaluate(
    resources: Sequence[Resource],
    config: Mapping[str, Any] | None = None,
    *,
    stack: str = "test",
    project: str = "llmops",
    policies: list[Policy] | None = None,
) -> list[Violation]:
    """Every violation the pack reports for `resources` under `config` (a policies/config file's content)."""
    policies = policies if policies is not None else build_policies()
    levels = _levels(policies, config)
    active = [p for p in policies if levels[p.name] != EnforcementLevel.DISABLED.value]
    found: list[Violation] = []

    def reporter(policy: Policy, default_urn: str) -> Any:
        def report(message: str, urn: str | None = None) -> None:
            found.append(Violation(policy.name, levels[policy.name], urn or default_urn, message))

        return report

    urns = [urn_of(r, stack, project) for r in resources]
    for resource, urn in zip(resources, urns, strict=True):
        props = engine_shape(resource.props)
        provider = (
            PolicyProviderResource("pulumi:providers:aws", engine_shape(resource.provider_props), "", "default")
            if resource.provider_props is not None
            else None
        )
        for policy in active:
            if isinstance(policy, ResourceValidationPolicy):
                options = resource_options(resource.parent)
                args = ResourceValidationArgs(resource.type, props, urn, resource.name, options, provider)
                policy.validate(args, reporter(policy, urn))

    stack_resources = [
        PolicyResource(
            r.type,
            engine_shape(r.outputs if r.outputs is not None else r.props),
            urn,
            r.name,
            resource_options(r.parent),
            None,
            None,
            [],
            {},
        )
        for r, urn in zip(resources, urns, strict=True)
    ]
    by_urn = {r.urn: r for r in stack_resources}
    for source, target in zip(resources, stack_resources, strict=True):
        for prop, deps in source.property_dependencies.items():
            target.property_dependencies[prop] = [by_urn[d] for d in deps if d in by_urn]
            target.dependencies.extend(by_urn[d] for d in deps if d in by_urn)
    for policy in active:
        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(stack_resources), reporter(policy, ""))
    return found
