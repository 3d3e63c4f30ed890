"""Run the Pulumi program under `pulumi.runtime.set_mocks` and keep the resource graph it registers.

`RecordingMonitor` extends the SDK's `MockMonitor` to keep, for every resource,
what the engine would receive: type, name, inputs (camelCase), parent, provider
and options (dependencies, delete-before-replace, retain-on-delete, ignore
changes, aliases). It names resources as the engine does: a child's URN type is
qualified by its parent's whole type chain (the SDK's mock keeps only the
parent's own type), and a resource's aliases are its alias specs resolved to
URNs plus, as the engine adds them, its parent's aliases carried down to it.
`CloudMocks` answers like a provider would: inputs echoed back, plus the
computed outputs the components read (ARNs, bucket names, cluster endpoint,
OIDC issuer, auto-generated names) and the invokes they call.

`run_program` runs a checkout's real `__main__.py` the way Pulumi's testing guide
shows: `set_mocks` plus `set_all_config` with the stack file's config. The
mocks tests and `llmops ci policy` (offline policy checks) share it.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as sdk_mocks
from pulumi.runtime.rpc import _special_secret_sig as SECRET_SIG
from pulumi.runtime.rpc import _special_sig_key as SECRET_SIG_KEY
from pulumi.runtime.settings import get_project, get_stack

from llmops.layout import parse_model_stack

ACCOUNT = "123456789012"
REGION = "us-east-1"
PROJECT = "llmops"
HUB_TOKEN = "hf_mocked_token_value_never_in_git"  # the mocked secret's value, for tests to look for


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    parent: str
    provider: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    delete_before_replace: bool
    retain_on_delete: bool
    ignore_changes: list[str]
    aliases: list[str] = field(default_factory=list)  # the URNs this resource had before, as the engine reads them
    secret_inputs: list[str] = field(default_factory=list)  # top-level inputs holding a secret (kept encrypted)


@dataclass
class Graph:
    """Everything one program run registered, in order."""

    resources: list[Registered] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registered:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        assert len(found) == 1, f"{type_} {name}: {len(found)} registered"
        return found[0]

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def children_of(self, urn: str) -> list[Registered]:
        return [r for r in self.resources if r.parent == urn]

    def ancestors(self, resource: Registered) -> list[Registered]:
        index, out, parent = self.by_urn(), [], resource.parent
        while parent in index:
            out.append(index[parent])
            parent = index[parent].parent
        return out

    def urns(self) -> set[str]:
        return {r.urn for r in self.resources}


def _autoname(name: str) -> str:
    return f"{name}-a1b2c3d"


def _outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What a provider would add to the inputs: computed properties the program reads."""
    service = typ.split(":")[1].split("/")[0]
    state: dict[str, Any] = {**inputs}
    physical = inputs.get("name") or _autoname(name)
    state.setdefault("name", physical)
    region = "" if service == "iam" else REGION  # IAM ARNs are global
    state.setdefault("arn", f"arn:aws:{service}:{region}:{ACCOUNT}:{typ.split(':')[-1].lower()}/{physical}")
    if typ == "aws:s3/bucket:Bucket":
        state["bucket"] = inputs.get("bucket") or _autoname(name)
        state["arn"] = f"arn:aws:s3:::{state['bucket']}"
    elif typ == "aws:eks/cluster:Cluster":
        state["endpoint"] = f"https://{physical}.gr7.{REGION}.eks.amazonaws.com"
        state["certificateAuthority"] = {"data": "LS0tLS1CRUdJTi1DRVJU"}
        state["identities"] = [{"oidcs": [{"issuer": f"https://oidc.eks.{REGION}.amazonaws.com/id/ABC123"}]}]
        state["vpcConfig"] = {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": "sg-cluster"}
    elif typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        state["arn"] = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{inputs['url'].removeprefix('https://')}"
    elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
        state["latestVersion"] = 1
    elif typ == "aws:sagemaker/pipeline:Pipeline":
        state["arn"] = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{inputs['pipelineName']}"
    elif typ == "aws:secretsmanager/secret:Secret":  # Secrets Manager appends six random characters
        state["arn"] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{physical}-AbCdEf"
    elif typ == "aws:sagemaker/modelPackageGroup:ModelPackageGroup":
        state["arn"] = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{inputs['modelPackageGroupName']}"
    elif typ.startswith("kubernetes:") and "metadata" in inputs:
        metadata = dict(inputs.get("metadata") or {})
        metadata.setdefault("name", f"{name}-x1y2z3w4")
        metadata.setdefault("namespace", "default")
        state["metadata"] = metadata
    return state


class CloudMocks(pulumi.runtime.Mocks):
    def __init__(self, references: Mapping[str, dict[str, Any]] | None = None) -> None:
        # Inputs of each registration, for the monitor to record (registrations come from several threads).
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()
        # The outputs of the stacks a program may reference, by fully qualified stack name.
        self.references = dict(references or {})

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "pulumi:pulumi:StackReference":  # a read: the stack's outputs, recorded by the monitor
            stack = str(args.inputs["name"])
            if stack not in self.references:
                raise ValueError(f"unknown stack {stack!r}: no mock outputs for it")
            return stack, {"name": stack, "outputs": self.references[stack], "secretOutputNames": []}
        with self.lock:
            self.inputs[(args.typ, args.name)] = args.inputs
        if not args.custom:
            return None, {}
        return f"{args.name}-id", _outputs(args.typ, args.name, args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "AIDA", "id": ACCOUNT}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{REGION}{z}" for z in "abcdef"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(6)], "id": REGION}
        if args.token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            secret_id = str(args.args["secretId"])
            arn = (
                secret_id
                if secret_id.startswith("arn:")
                else f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}-AbCdEf"
            )
            return {"arn": arn, "secretId": secret_id, "secretString": HUB_TOKEN, "versionId": "v1", "id": arn}
        raise NotImplementedError(f"no mock for invoke {args.token}")


class RecordingMonitor(sdk_mocks.MockMonitor):
    def __init__(self, mocks: CloudMocks) -> None:
        super().__init__(mocks)
        self.cloud = mocks
        self.graph = Graph()
        self.aliases: dict[str, list[str]] = {}
        self.outputs: dict[str, Any] = {}  # the stack's exports, resolved (run_program)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The engine's rule: a child's type is qualified by its parent's whole type chain,
        except that the stack itself qualifies nothing."""
        if parent:
            qualified = parent.split("::")[2]
            if qualified != "pulumi:pulumi:Stack":
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([get_stack(), get_project(), type_, name])

    def _alias_urns(self, request: Any, urn: str) -> list[str]:
        """The old URNs the engine would match this resource's state against."""
        out: list[str] = []
        for alias in request.aliases:
            if alias.WhichOneof("alias") == "urn":
                out.append(alias.urn)
                continue
            spec = alias.spec
            which = spec.WhichOneof("parent")
            parent = spec.parentUrn if which == "parentUrn" else "" if which == "noParent" else request.parent
            out.append(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        # A resource whose parent moved keeps its identity under each of the parent's former URNs.
        for parent_alias in self.aliases.get(request.parent, []):
            out.append(self.make_urn(parent_alias, request.type, request.name))
        out = sorted(set(out) - {urn})
        self.aliases[urn] = out
        return out

    def ReadResource(self, request: Any) -> Any:
        """A read (a StackReference): recorded with the name it reads."""
        response = super().ReadResource(request)  # type: ignore[no-untyped-call]
        self.graph.resources.append(
            Registered(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=True,
                inputs={"name": request.id},
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                property_dependencies={},
                delete_before_replace=False,
                retain_on_delete=False,
                ignore_changes=[],
            )
        )
        return response

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            with self.cloud.lock:
                inputs = self.cloud.inputs.pop((request.type, request.name))
            self.graph.resources.append(
                Registered(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    custom=bool(request.custom),
                    inputs=_unwrap_secrets(inputs),
                    parent=request.parent,
                    provider=request.provider,
                    dependencies=list(request.dependencies),
                    property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    retain_on_delete=bool(request.retainOnDelete),
                    ignore_changes=list(request.ignoreChanges),
                    aliases=self._alias_urns(request, response.urn),
                    secret_inputs=_secret_keys(request.object),
                )
            )
        return response


def _unwrap_secrets(value: Any) -> Any:
    """Inputs as a provider reads them: a secret's value in place of its wrapper (`secret_inputs` keeps which)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return _unwrap_secrets(value.get("value"))
        return {k: _unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v) for v in value]
    return value


def _secret_keys(struct: Any) -> list[str]:
    """The top-level properties whose serialized value holds a secret anywhere (the engine's secret signature)."""
    from google.protobuf.json_format import MessageToDict

    return sorted(k for k, v in MessageToDict(struct).items() if SECRET_SIG in json.dumps(v))


@contextmanager
def mocked(
    stack: str,
    config: Mapping[str, Any] | None = None,
    secret_keys: list[str] | None = None,
    project: str = PROJECT,
    references: Mapping[str, dict[str, Any]] | None = None,
) -> Iterator[RecordingMonitor]:
    """Pulumi's runtime against recording mocks, with `config` set through `set_all_config`
    (as Pulumi's testing guide does), for one run; `references`: other stacks' outputs."""
    mocks = CloudMocks(references)
    monitor = RecordingMonitor(mocks)
    try:
        pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(engine_config(config or {}), secret_keys or [])
        yield monitor
    finally:
        pulumi.runtime.set_all_config({}, [])


def engine_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Stack config as the engine hands it to a program: structured values as JSON text."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def stack_config(root: Path, stack: str) -> dict[str, Any]:
    """The `config:` block of `root`'s stacks/Pulumi.<stack>.yaml."""
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    return dict((yaml.safe_load(path.read_text()) or {}).get("config") or {})


def run_program(root: Path, stack: str) -> Graph:
    """`root`'s `__main__.py` for one of its stack files, with that file's config, under mocks.

    A model stack (`<env stack>.<model>`) reads its platform stack's outputs: that stack's
    program runs first, and its exports are what the model stack's reference reads."""
    references: dict[str, dict[str, Any]] = {}
    ref = parse_model_stack(stack)
    if ref is not None:
        references[f"organization/{PROJECT}/{ref.platform}"] = _run(root, ref.platform, {}).outputs
    return _run(root, stack, references).graph


def _run(root: Path, stack: str, references: dict[str, dict[str, Any]]) -> RecordingMonitor:
    config = stack_config(root, stack) if parse_model_stack(stack) is None else {}
    with mocked(stack, config, references=references) as monitor:

        @pulumi.runtime.test  # type: ignore[untyped-decorator]
        def program() -> pulumi.Output[None]:
            runpy.run_path(str(root / "__main__.py"), run_name="__pulumi_program__")
            # The stack's exports (what a model stack's reference reads), resolved with the run.
            exports = getattr(pulumi.runtime.get_root_resource(), "outputs", {})
            return pulumi.Output.from_input(exports).apply(monitor.outputs.update)

        program()
    return monitor


@contextmanager
def event_loop() -> Iterator[None]:
    """A fresh event loop for one mocked run (the SDK's mocks need a current loop)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        loop.close()
        asyncio.set_event_loop(None)
