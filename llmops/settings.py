"""Stack settings: what one Pulumi stack (`stacks/Pulumi.<stack>.yaml`) declares.

The same pydantic model reads the settings from the stack file (core tools: the
validator, `llmops cost`, `llmops plan`) and from `pulumi.Config` inside the
program, so a key spelled wrong fails both the same way.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from llmops.errors import UserError

CONFIG_NAMESPACE = "llmops"
STACK_FILE_PREFIX = "Pulumi."
PROMOTION_ORDER = ("dev", "staging", "prod")
# A Secrets Manager secret by name, or by its full ARN (which ends in a random 6-character suffix).
SECRET_ARN_RE = r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}"
SECRET_REF_RE = rf"^(?:{SECRET_ARN_RE}|[A-Za-z0-9/_+=.@-]{{1,512}})$"


class _Settings(BaseModel):
    # Pulumi config keys are camelCase by convention; Python code uses snake_case.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class NodePool(_Settings):
    """A GPU node pool (an EKS managed node group). Its labels are also the
    node selector of every workload placed on it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    instance_types: list[str] = Field(min_length=1)
    min_size: int = Field(default=0, ge=0)
    max_size: int = Field(default=2, ge=0)
    desired_size: int = Field(default=0, ge=0)
    spot: bool = False
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sizes(self) -> NodePool:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"need minSize <= desiredSize <= maxSize, got {self.min_size}/{self.desired_size}/{self.max_size}"
            )
        return self

    @property
    def selector(self) -> dict[str, str]:
        """The labels a workload must select to land on this pool."""
        return {"llmops.io/pool": self.name, **self.labels}


class EndpointAccess(_Settings):
    """Who reaches the EKS API endpoint. Public (the default, so GitHub-hosted runners can deploy):
    restricted to `publicCidrs`; private: only from inside the VPC (self-hosted runners there)."""

    mode: Literal["public", "private"] = "public"
    public_cidrs: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0"],
        description="Networks allowed to the public endpoint (IAM still authenticates every request).",
    )

    @model_validator(mode="after")
    def _cidrs(self) -> EndpointAccess:
        for cidr in self.public_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"publicCidrs: {exc}") from None
        if self.mode == "public" and not self.public_cidrs:
            raise ValueError("a public endpoint needs publicCidrs (or mode: private)")
        if self.mode == "private" and "public_cidrs" in self.model_fields_set:
            raise ValueError("publicCidrs apply to mode: public; a private endpoint has no public address")
        return self

    @property
    def open_to_all(self) -> bool:
        return self.mode == "public" and any(c in ("0.0.0.0/0", "::/0") for c in self.public_cidrs)


class ClusterSettings(_Settings):
    create: Literal["when-used", "always"] = Field(
        default="when-used",
        description="when-used: an EKS cluster (with its NAT and node pools) only where a model serves on EKS.",
    )
    endpoint_access: EndpointAccess = Field(default_factory=EndpointAccess)
    admins: list[str] = Field(
        default_factory=list,
        description="IAM role or user ARNs given cluster-admin access entries (people, break-glass roles).",
    )
    ci_access: bool = Field(
        default=True, description="Access entries for the bootstrap's CI roles (deploy, preview, drift, experiment)."
    )
    vpc_id: str | None = Field(default=None, description="Use an existing VPC instead of creating one.")
    private_subnet_ids: list[str] = Field(default_factory=list)
    vpc_cidr: str = "10.40.0.0/16"
    kubernetes_version: str = "1.33"
    system_instance_type: str = "m6i.large"
    system_nodes: int = Field(default=2, ge=1)
    gpu_pools: list[NodePool] = Field(default_factory=list)

    @model_validator(mode="after")
    def _admins(self) -> ClusterSettings:
        for arn in self.admins:
            if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+", arn):
                raise ValueError(f"admins: {arn!r} is not an IAM role or user ARN")
        return self


class Quotas(_Settings):
    max_replicas_per_endpoint: int = Field(default=8, ge=1)
    max_gpus_per_endpoint: int = Field(default=8, ge=1)
    max_gpus_per_pool: int = Field(default=32, ge=1)


class PolicySettings(_Settings):
    enforcement: Literal["advisory", "mandatory", "disabled"] = "advisory"
    allowed_instance_types: list[str] = Field(default_factory=list, description="Empty: any catalog type.")
    licence_allowlist: list[str] = Field(
        default_factory=lambda: ["apache-2.0", "mit", "llama3.1", "llama3.2", "gemma", "bsd-3-clause"]
    )


class LocalSettings(_Settings):
    """Settings of the local target (this machine)."""

    base_port: int = Field(default=18400, ge=1024, le=65000)
    state_dir: str = ".state/local"
    health_timeout_seconds: float = Field(default=120.0, gt=0)


class ReviewSettings(_Settings):
    """Review stacks of an AWS environment (`llmops ci review open --environment E`): opt-in."""

    enabled: bool = Field(default=False, description="Pull requests may open review stacks on this environment.")
    ttl: float = Field(default=24.0, gt=0, le=24 * 14, description="Hours until `reap` destroys a review stack.")
    capacity: int = Field(default=1, ge=0, le=20, description="Review stacks of this environment open at once.")


class ReviewStackSettings(_Settings):
    """Marks a stack as a pull request's review stack on AWS (written by `llmops ci review open`).

    The program then serves each model on the smallest instance that fits, with one
    replica, and tags every resource with `tags()`.
    """

    pr: int = Field(ge=1)
    head_sha: str = Field(pattern=r"^[0-9a-f]{7,40}$")
    created_at: str = Field(pattern=r"^\d{8}T\d{6}Z$", description="UTC, ISO 8601 basic (a valid label value).")
    ttl: float = Field(gt=0)

    def tags(self) -> dict[str, str]:
        """The review tags of every resource; each value is also a valid Kubernetes label value."""
        return {"pr": str(self.pr), "head-sha": self.head_sha, "created-at": self.created_at, "ttl": f"{self.ttl:g}"}


class ScaleToZeroSettings(_Settings):
    """Whether models may stop their last replica when idle here (`serving.scale_to_zero`)."""

    allowed: bool | None = Field(default=None, description="Default: every environment but production.")
    default_idle_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 86400,
        description="Scale to zero every deployment here that does not set it, where allowed and its platform "
        "supports it (dev and review stacks).",
    )


class RightsizeSettings(_Settings):
    """The guards of `llmops rightsize` in this stack."""

    min_replicas: int | None = Field(
        default=None, ge=1, description="No proposal goes below it. Default: 2 in production, else 1."
    )
    headroom: float = Field(default=0.3, ge=0, le=4, description="Spare capacity kept above the p95 load (0.3: 30%).")


class StackSettings(_Settings):
    target: Literal["aws", "local", "kube"]
    environment: str = Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")
    production: bool = Field(default=False, description="Marks a prod environment: pinned revisions, eval gates.")
    region: str = "us-east-1"
    default_endpoint_platform: Literal["sagemaker", "eks"] = "sagemaker"
    budget_monthly_usd: float = Field(default=0.0, ge=0, description="0 means no budget.")
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    quotas: Quotas = Field(default_factory=Quotas)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    alarm_email: str | None = None
    hf_token_secret: str | None = Field(
        default=None,
        description="The Secrets Manager secret (name or ARN) holding the Hugging Face token that gated "
        "models need; its value never appears in git or the stack's config.",
    )
    models: list[str] = Field(
        default_factory=list, description="Only these registry models (a review stack); empty: all it deploys."
    )
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    review_stack: ReviewStackSettings | None = Field(default=None, description="Set on an AWS review stack only.")
    scale_to_zero: ScaleToZeroSettings = Field(default_factory=ScaleToZeroSettings)
    rightsize: RightsizeSettings = Field(default_factory=RightsizeSettings)
    layout: Literal["single", "split"] = Field(
        default="single",
        description="single: this stack holds every model of its environment. split: it holds what the "
        "models share (cluster, shared monitoring), and each model deployed here gets a stack of its own, "
        "`<stack>.<model>`, with settings derived from this file (`llmops migrate-stacks` moves a single "
        "stack's models there).",
    )

    @property
    def allows_scale_to_zero(self) -> bool:
        allowed = self.scale_to_zero.allowed
        return (not self.production) if allowed is None else allowed

    def hf_token_secret_arn(self, partition: str, account: str) -> str | None:
        """The token secret as IAM names it: its ARN, or for a name every version of that name
        (`-??????` matches the suffix Secrets Manager appends, as AWS's own policy examples do)."""
        ref = self.hf_token_secret
        if ref is None or re.fullmatch(SECRET_ARN_RE, ref):
            return ref
        return f"arn:{partition}:secretsmanager:{self.region}:{account}:secret:{ref}-??????"

    def scale_to_zero_unsupported(self, platform: str | None, versions: int, shadow: bool) -> str | None:
        """Why this stack cannot run a deployment scaled to zero (None: it can).

        Local: the front parks and wakes replicas. SageMaker: an inference component with
        `MinInstanceCount: 0`, which serves one version. EKS: not without KEDA, which the
        cluster does not run (an HPA never goes below one replica).
        """
        if self.target == "local":
            return None
        if (platform or self.default_endpoint_platform) == "eks":
            return (
                "EKS endpoints do not scale to zero (an HPA keeps one replica; that needs KEDA, "
                "which the cluster does not run): serve it on SageMaker, or drop scale_to_zero"
            )
        if versions != 1 or shadow:
            return (
                "a SageMaker endpoint scales to zero through one inference component, which serves one "
                "version with no traffic split or shadow: finish the split first"
            )
        return None

    @property
    def replica_floor(self) -> int:
        """The fewest replicas a right-sizing proposal may leave."""
        floor = self.rightsize.min_replicas
        return floor if floor is not None else (2 if self.production else 1)

    @field_validator("hf_token_secret")
    @classmethod
    def _secret_ref(cls, value: str | None) -> str | None:
        # A user access token (hf_ + 34 letters) in the stack file would be in git: refused as such.
        token = value is not None and re.fullmatch(r"hf_[A-Za-z0-9]{30,}", value)
        if value is not None and (token or not re.fullmatch(SECRET_REF_RE, value)):
            raise ValueError("name a Secrets Manager secret (e.g. llmops/hf-token) or give its ARN, never the token")
        return value

    @model_validator(mode="after")
    def _review(self) -> StackSettings:
        if self.review.enabled and self.target != "aws":
            raise ValueError("review.enabled applies to AWS stacks (local review stacks need no opt-in)")
        if self.review_stack is not None and (self.target != "aws" or not self.models):
            raise ValueError("reviewStack marks an AWS review stack: it needs target aws and its `models`")
        if self.layout == "split" and (self.target == "kube" or self.review_stack is not None or self.models):
            raise ValueError(
                "layout: split applies to an environment's own aws or local stack (not kube, nor a review "
                "stack or a stack of chosen `models`)"
            )
        return self

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StackSettings:
        """Build from a stack's `config:` mapping (keys `llmops:<name>`; `aws:region` too)."""
        values: dict[str, Any] = {}
        for key, value in config.items():
            namespace, _, name = str(key).partition(":")
            if namespace == CONFIG_NAMESPACE:
                values[name] = value
            elif key == "aws:region":
                values.setdefault("region", value)
        return cls.model_validate(values)

    def pool(self, name: str) -> NodePool:
        for pool in self.cluster.gpu_pools:
            if pool.name == name:
                return pool
        raise KeyError(name)


def stack_files(stacks_dir: Path) -> dict[str, Path]:
    """Stack name -> its settings file. A model stack's file (`Pulumi.<env>.<model>.yaml`, written
    by the engine for its secrets provider only) holds no settings: its environment's file does."""
    out: dict[str, Path] = {}
    for path in sorted(stacks_dir.glob(f"{STACK_FILE_PREFIX}*.yaml")):
        name = path.name[len(STACK_FILE_PREFIX) : -len(".yaml")]
        if "." not in name:
            out[name] = path
    return out


class StackSettingsError(UserError, ValueError):
    """A stack file's settings are invalid; the message names the file and each key at fault.
    A UserError, so any command that reads stacks prints it as one line instead of a traceback."""


def load_stack_settings(path: Path) -> StackSettings:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise StackSettingsError(f"stacks/{path.name}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise StackSettingsError(f"stacks/{path.name}: expected a mapping with a `config:` key")
    try:
        return StackSettings.from_config(data.get("config") or {})
    except ValidationError as exc:
        raise StackSettingsError(located_errors(exc, f"stacks/{path.name}")) from None


def located_errors(exc: ValidationError, where: str) -> str:
    """One line per error: `<file>: llmops:<key.path>: <message> (got <value>)`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [to_camel(p) if isinstance(p, str) else str(p) for p in err["loc"]]
        key = f"{CONFIG_NAMESPACE}:{'.'.join(loc)}" if loc else "config"
        value = err.get("input")
        # A value typed where a secret's name belongs may be the secret: never echoed into CI logs.
        quiet = isinstance(value, dict | list) or err["type"] == "missing" or loc[:1] == ["hfTokenSecret"]
        got = "" if quiet else f" (got {value!r})"
        lines.append(f"{where}: {key}: {err['msg'].removeprefix('Value error, ')}{got}")
    return "\n".join(lines)


def load_all_stacks(stacks_dir: Path) -> dict[str, StackSettings]:
    return {name: load_stack_settings(path) for name, path in stack_files(stacks_dir).items()}


def environments(stacks: dict[str, StackSettings]) -> dict[str, list[str]]:
    """Environment -> the stacks that deploy it."""
    out: dict[str, list[str]] = {}
    for name, settings in stacks.items():
        out.setdefault(settings.environment, []).append(name)
    return out
