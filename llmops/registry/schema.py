"""The registry entry's schema: one model per YAML file, as pydantic models.

`ModelEntry` is what a file declares; `Deployment` is a model as one environment
runs it (the entry's serving section with that environment's overrides applied).
A model declares each version's weights once, under `versions`; variants and
shadows name a version, and `Deployment.variant_source` looks its weights up.
`models/schema.json` is generated from here (`make schema`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

SCHEMA_HEADER = "# yaml-language-server: $schema=schema.json"
EVALS_DIR = "evals"  # evaluation suites: models/evals/<suite>/ (lm-eval task YAMLs and their data)
TRAINING_OUTPUT = "@training"  # a version's `local` value: this model's own training artifact.
# A version's `local` value pinning one training artifact of the local store by its content digest
# (`llmops train adopt MODEL --stack local`): unlike "@training", it never moves with the training spec.
ARTIFACT_PREFIX = "sha256:"
ARTIFACT_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
VERSION_RE = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,20}$"

Runtime = Literal["tgi", "lmi", "vllm", "transformers"]
Dtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"]
EndpointPlatform = Literal["sagemaker", "eks"]
ExperimentMetric = Literal["error_rate", "latency", "feedback"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HuggingFaceSource(_Model):
    repo: str = Field(pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$", description="Hub repository id.")
    revision: str = Field(default="", description="Commit sha (40 hex) to pin; a branch is unpinned.")
    gated: bool = Field(
        default=False,
        description="The hub serves this repository only with a token (Llama, Gemma, ...): on AWS the stack "
        "names the Secrets Manager secret that holds it (llmops:hfTokenSecret).",
    )

    @property
    def pinned(self) -> bool:
        return bool(SHA_RE.match(self.revision))


class S3Source(_Model):
    uri: str = Field(
        pattern=r"^s3://[a-z0-9.-]{3,63}/.+",
        description="Prefix holding the weights, or a SageMaker training run's model.tar.gz archive.",
    )
    version_id: str | None = Field(default=None, description="Object version or content hash that pins it.")

    @property
    def archive(self) -> bool:
        """One gzipped tar of the weights (what a SageMaker training job writes), not a prefix."""
        return self.uri.endswith(".tar.gz")

    @property
    def pinned(self) -> bool:
        return bool(self.version_id)


class WeightsSource(_Model):
    """Where the weights come from: exactly one of huggingface, s3, local."""

    huggingface: HuggingFaceSource | None = None
    s3: S3Source | None = None
    local: str | None = Field(
        default=None,
        description=f"A path on this machine; {TRAINING_OUTPUT!r} for this model's current training run; or "
        f"'{ARTIFACT_PREFIX}<64 hex>' for one adopted training artifact of the local store, pinned by digest.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> WeightsSource:
        given = [k for k in ("huggingface", "s3", "local") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of huggingface, s3, local (got {', '.join(given) or 'none'})")
        if self.local is not None and self.local.startswith(ARTIFACT_PREFIX) and not ARTIFACT_RE.match(self.local):
            raise ValueError(f"an artifact pin is '{ARTIFACT_PREFIX}' and 64 lowercase hex digits (got {self.local!r})")
        return self

    @property
    def artifact(self) -> str | None:
        """The sha256 of the pinned local-store artifact, for a `local: "sha256:…"` version."""
        if self.local is not None and ARTIFACT_RE.match(self.local):
            return self.local.removeprefix(ARTIFACT_PREFIX)
        return None

    @property
    def kind(self) -> str:
        return "huggingface" if self.huggingface else "s3" if self.s3 else "local"

    @property
    def pinned(self) -> bool:
        if self.huggingface:
            return self.huggingface.pinned
        if self.s3:
            return self.s3.pinned
        return True  # local paths and training artifacts are content-addressed by the local store

    @property
    def gated(self) -> bool:
        """The weights come from a hub repository that asks for a token."""
        return self.huggingface is not None and self.huggingface.gated

    @property
    def uri(self) -> str:
        if self.huggingface:
            return f"hf://{self.huggingface.repo}@{self.huggingface.revision}"
        if self.s3:
            return self.s3.uri
        return f"file://{self.local}"


class Source(_Model):
    """What every version of the model shares: its architecture. The weights are per version (`versions`)."""

    config: str = Field(
        pattern=r"^configs/[A-Za-z0-9._-]+\.json$",
        description="transformers config.json under models/configs/, used for offline sizing.",
    )
    # Set by ModelEntry: a pinned hub revision of this architecture (the first version on the hub),
    # which sizing asks once for a model that ships no config.
    _hub: HuggingFaceSource | None = PrivateAttr(default=None)

    @property
    def huggingface(self) -> HuggingFaceSource | None:
        return self._hub

    @model_validator(mode="before")
    @classmethod
    def _no_weights(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"huggingface", "s3", "local"} & set(data):
            raise ValueError(
                "weights are declared per version: move them under `versions: {VERSION: {...}}` "
                "and keep only `config` here"
            )
        return data


Version = Annotated[str, Field(pattern=VERSION_RE, description="A version declared in the model's `versions`.")]


def _refers_by_name(data: Any) -> Any:
    """Variants and shadows name a version; its weights are declared once, under `versions`."""
    if isinstance(data, dict) and "source" in data:
        raise ValueError(
            f"`source` is no longer given here: declare version {data.get('version')!r} once under the "
            "model's `versions` (version -> weights) and refer to it by name"
        )
    return data


class Variant(_Model):
    version: Version
    weight: int = Field(ge=0, le=100, description="Share of traffic, percent.")

    @model_validator(mode="before")
    @classmethod
    def _by_name(cls, data: Any) -> Any:
        return _refers_by_name(data)


def _check_variants(variants: list[Variant]) -> list[Variant]:
    total = sum(v.weight for v in variants)
    if total != 100:
        raise ValueError(f"variant weights sum to {total}, must be 100")
    versions = [v.version for v in variants]
    if len(set(versions)) != len(versions):
        raise ValueError(f"variant versions repeat: {versions}")
    return variants


# Checked on the field itself, so a problem is reported at the `variants` key.
Variants = Annotated[list[Variant], Field(min_length=1, max_length=10), AfterValidator(_check_variants)]


class Rollout(_Model):
    """How a canary is walked forward: the weight steps and the statistics that gate each
    step (read by `llmops experiment`; see llmops/experiments/)."""

    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [10, 50, 100], min_length=1, description="Canary weights in order, percent."
    )
    min_samples: int = Field(
        default=200,
        ge=1,
        description="Observations per variant (requests, or ratings for feedback) before a promote; "
        "a significant harm rolls back at any sample size.",
    )
    max_duration: int = Field(
        default=86_400, ge=60, description="Seconds a step may stay inconclusive before it is rolled back."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="Family-wise error rate of one step.")
    looks: int = Field(default=24, ge=1, le=1000, description="Analyses planned per step (Bonferroni).")
    # None, not a list default: unlisted, feedback joins as a guardrail (llmops/experiments/stats.py).
    metrics: list[ExperimentMetric] | None = Field(
        default=None,
        min_length=1,
        description="Metrics that gate a step. Unset: error_rate and latency gate, and feedback rolls back "
        "on a significant drop in ratings wherever both variants have ratings.",
    )

    @model_validator(mode="after")
    def _increasing(self) -> Rollout:
        if self.steps != sorted(set(self.steps)) or self.steps[-1] != 100:
            raise ValueError(f"steps must increase strictly and end at 100, got {self.steps}")
        return self


class Shadow(_Model):
    """A version that receives a copy of a sample of live requests; its answers are discarded."""

    version: Version
    percent: float = Field(gt=0, le=100, description="Share of live requests mirrored.")

    @model_validator(mode="before")
    @classmethod
    def _by_name(cls, data: Any) -> Any:
        return _refers_by_name(data)


class Autoscaling(_Model):
    target_invocations_per_replica: int = Field(
        default=60, ge=1, description="Requests per replica per minute that autoscaling aims for."
    )
    scale_in_cooldown_seconds: int = Field(default=300, ge=0)
    scale_out_cooldown_seconds: int = Field(default=60, ge=0)


class ScaleToZero(_Model):
    """Stop every replica after `idle_seconds` without a request; the next request starts one again.
    Allowed where the stack allows it (`llmops:scaleToZero`; production only by opting in)."""

    idle_seconds: int = Field(
        ge=1, le=7 * 86400, description="Seconds without a request before the last replica stops."
    )
    cold_start_wait_seconds: int = Field(
        default=60, ge=1, le=900, description="How long a request waits for a replica to start; then 503 + Retry-After."
    )


class Serving(_Model):
    runtime: Runtime
    platform: EndpointPlatform | None = Field(default=None, description="Default: the stack's.")
    dtype: Dtype = "bf16"
    max_context: int = Field(ge=16, le=1_048_576)
    concurrency: int = Field(default=4, ge=1, le=1024, description="Concurrent sequences per replica.")
    max_new_tokens: int = Field(default=256, ge=1)
    instance: str = Field(default="auto", description="A catalog instance type, or auto (sized).")
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=1, ge=1)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    cpu_fallback: bool = Field(default=False, description="Allow running on CPU where no GPU fits (local).")
    variants: Variants
    rollout: Rollout | None = Field(default=None, description="Progressive delivery of a canary variant.")
    shadow: Shadow | None = Field(default=None, description="Mirror a sample of traffic to this version.")
    scale_to_zero: ScaleToZero | None = Field(default=None, description="Stop the last replica when idle.")

    @model_validator(mode="after")
    def _checks(self) -> Serving:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})")
        return self


class DeploymentOverride(_Model):
    platform: EndpointPlatform | None = None
    instance: str | None = None
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    variants: Variants | None = None
    rollout: Rollout | None = None
    shadow: Shadow | None = None
    scale_to_zero: ScaleToZero | None = None

    @model_validator(mode="after")
    def _checks(self) -> DeploymentOverride:
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})")
        return self


class Dataset(_Model):
    """A registry dataset (`name` + `version`, see models/datasets/), or a raw `uri` pinned by version or sha256."""

    name: str | None = Field(default=None, pattern=NAME_RE, description="A dataset of models/datasets/.")
    uri: str | None = Field(default=None, min_length=1, description="s3://… or a path in this repository.")
    version: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _pinned(self) -> Dataset:
        if (self.name is None) == (self.uri is None):
            raise ValueError("give a dataset name (with its version) or a uri")
        if self.name is not None and not self.version:
            raise ValueError(f"dataset {self.name!r} needs a version")
        if not (self.version or self.sha256):
            raise ValueError("a dataset needs a version or a sha256")
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}" if self.name else f"{self.uri}@{self.sha256 or self.version}"


class Training(_Model):
    base_model: str = Field(min_length=1, description="Hub repo, or 'scratch' to train from the config.")
    platform: EndpointPlatform = Field(default="sagemaker", description="aws: a SageMaker pipeline or an EKS Job.")
    pool: str | None = Field(default=None, description="GPU pool for an EKS job (stack's first pool if unset).")
    dataset: Dataset
    hyperparameters: dict[str, int | float | str | bool] = Field(default_factory=dict)
    instance: str = Field(default="ml.g5.2xlarge", description="Training instance type (catalog).")
    instance_count: int = Field(default=1, ge=1, le=64)
    spot: bool = True
    max_runtime: int = Field(ge=60, le=28 * 24 * 3600, description="Seconds.")
    checkpoint: str | None = Field(default=None, description="Checkpoint location (s3:// on AWS).")
    monthly_budget_usd: float = Field(default=0.0, ge=0, description="Training spend a month, for cost.")


class Slo(_Model):
    p95_latency_ms: float = Field(gt=0)
    error_rate: float = Field(gt=0, le=1, description="Fraction of requests, e.g. 0.01.")
    gpu_memory_utilization: float = Field(default=0.95, gt=0, le=1)


class Capture(_Model):
    """Inference data capture (SageMaker data capture on AWS; the front's capture files locally)."""

    enabled: bool = True
    sample: float = Field(default=1.0, ge=0, le=1, description="Share of requests captured.")
    max_file_mb: float = Field(default=1.0, gt=0, description="A capture file rotates past this size (local).")
    max_total_mb: float = Field(default=64.0, gt=0, description="Oldest capture files go past this total (local).")


class DriftMonitoring(_Model):
    """Drift of captured traffic against the training dataset's eval split (llmops.datasets.drift)."""

    dataset: str | None = Field(default=None, pattern=NAME_RE, description="Reference dataset; default: training's.")
    interval_seconds: int = Field(default=300, ge=5, description="How often the scheduled monitor runs.")
    threshold: float = Field(default=0.01, gt=0, lt=1, description="p-value below which a descriptor drifted.")
    drift_share: float = Field(default=0.25, gt=0, le=1, description="Share of drifted descriptors that alerts.")
    min_records: int = Field(default=30, ge=1, description="Captured records needed before judging.")


class Monitoring(_Model):
    slo: Slo
    capture: Capture = Field(default_factory=Capture)
    drift: DriftMonitoring | None = None

    def drift_dataset(self, entry: ModelEntry) -> str | None:
        """The dataset the drift monitor compares with: its own, or the training dataset's."""
        if self.drift is None:
            return None
        if self.drift.dataset:
            return self.drift.dataset
        return entry.training.dataset.name if entry.training else None


class EvaluationGate(_Model):
    """A gate a model version must pass before it serves: a measured metric of a suite in
    `models/evals/<suite>/` against a threshold. Results are measured, never typed here."""

    suite: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="A suite folder under models/evals/.")
    metric: str = Field(min_length=1, description="A metric the suite reports, e.g. exact_match.")
    threshold: float
    higher_is_better: bool = True
    max_regression_vs_serving: float | None = Field(
        default=None,
        ge=0,
        description="How much worse than the serving version the candidate may measure (champion/challenger).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_typed_result(cls, data: Any) -> Any:
        if isinstance(data, dict) and "result" in data:
            raise ValueError(
                "`result` is no longer typed into the registry: results are measured by the suite's "
                "Evaluation and recorded in the stack outputs (`evaluations`); see `llmops eval run MODEL`"
            )
        return data

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.higher_is_better else value <= self.threshold


def _gate_list(value: Any) -> Any:
    if isinstance(value, dict):
        raise ValueError(
            "compliance.evaluation is a list of gates ({suite, metric, threshold, higher_is_better, "
            "max_regression_vs_serving}); results are measured, never typed"
        )
    return value


class Compliance(_Model):
    licence: str = Field(min_length=1)
    model_card: str = Field(min_length=1)
    evaluation: Annotated[list[EvaluationGate], BeforeValidator(_gate_list)] = Field(
        default_factory=list, description="Gates every rollout must pass, measured by models/evals/<suite>/."
    )

    @model_validator(mode="after")
    def _unique_gates(self) -> Compliance:
        seen = [(g.suite, g.metric) for g in self.evaluation]
        if len(seen) != len(set(seen)):
            raise ValueError("two gates on the same suite and metric")
        return self


class ModelEntry(_Model):
    name: str = Field(pattern=NAME_RE, description="DNS-safe, at most 40 characters; equals the file stem.")
    owner: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Owning team.")
    description: str = Field(min_length=1)
    task: Literal["text-generation", "embeddings", "reranking", "classification"]
    source: Source
    versions: dict[Annotated[str, Field(pattern=VERSION_RE)], WeightsSource] = Field(
        min_length=1,
        description="Every version of the model, each with its weights, declared once. Variants, shadows and "
        "promotions name a version; the weights of a version that has served never change (a new version does).",
    )
    serving: Serving
    deployments: dict[str, DeploymentOverride | None] = Field(min_length=1)
    training: Training | None = None
    monitoring: Monitoring
    compliance: Compliance
    tags: dict[str, str] = Field(default_factory=dict)
    examples: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list,
        max_length=10,
        description="Example prompts: a review stack's smoke run sends them, and the model card shows them.",
    )

    @model_validator(mode="after")
    def _versions(self) -> ModelEntry:
        """Every version a variant or shadow names is declared; one version at most is the training run."""
        errors: list[InitErrorDetails] = []

        def error(loc: tuple[int | str, ...], message: str, value: Any) -> None:
            errors.append(InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value))

        trained = [v for v, s in self.versions.items() if s.local == TRAINING_OUTPUT]
        for version in trained if self.training is None else []:
            error(("versions", version, "local"), f"{TRAINING_OUTPUT!r} but the model has no training section", "")
        for version in trained[1:]:
            error(
                ("versions", version, "local"),
                f"{trained[0]} is already this model's training run: one version names {TRAINING_OUTPUT!r}",
                TRAINING_OUTPUT,
            )
        declared = ", ".join(self.versions)
        for where, variants, shadow in self._references():
            for i, variant in enumerate(variants or []):
                if variant.version not in self.versions:
                    error(
                        (*where, "variants", i, "version"),
                        f"unknown version {variant.version!r} (declared under `versions`: {declared})",
                        variant.version,
                    )
            if shadow is not None and shadow.version not in self.versions:
                error(
                    (*where, "shadow", "version"),
                    f"unknown version {shadow.version!r} (declared under `versions`: {declared})",
                    shadow.version,
                )
        self.source._hub = next((s.huggingface for s in self.versions.values() if s.huggingface), None)
        if errors:
            # Raised with each error's own location, so the file's line of the reference is reported.
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _references(self) -> list[tuple[tuple[str, ...], list[Variant] | None, Shadow | None]]:
        refs: list[tuple[tuple[str, ...], list[Variant] | None, Shadow | None]] = [
            (("serving",), self.serving.variants, self.serving.shadow)
        ]
        for env, override in self.deployments.items():
            if override is not None:
                refs.append((("deployments", env), override.variants, override.shadow))
        return refs

    def gated_training_base(self) -> str | None:
        """The version declaring the training base model's hub repository gated, if any: the base is
        then downloaded with the token too (a gated repo is declared once, where a version names it)."""
        if self.training is None:
            return None
        return next(
            (
                v
                for v, s in self.versions.items()
                if s.huggingface and s.huggingface.gated and s.huggingface.repo == self.training.base_model
            ),
            None,
        )

    @property
    def default_version(self) -> str:
        """The version serving most of the traffic where no environment overrides it."""
        return max(self.serving.variants, key=lambda v: v.weight).version

    def weights(self, version: str | None = None) -> WeightsSource:
        """The weights of `version` (default: `default_version`)."""
        return self.versions[version or self.default_version]

    def deployment(self, environment: str) -> Deployment:
        """The serving settings for one environment, overrides applied."""
        override = self.deployments.get(environment) or DeploymentOverride()
        return Deployment(
            model=self,
            environment=environment,
            platform=override.platform or self.serving.platform,
            instance=override.instance or self.serving.instance,
            min_replicas=override.min_replicas or self.serving.min_replicas,
            max_replicas=override.max_replicas or max(self.serving.max_replicas, override.min_replicas or 0),
            variants=override.variants or self.serving.variants,
            rollout=override.rollout or self.serving.rollout,
            shadow=override.shadow or self.serving.shadow,
            scale_to_zero=override.scale_to_zero or self.serving.scale_to_zero,
        )


@dataclass(frozen=True)
class Deployment:
    """A model as one environment runs it."""

    model: ModelEntry
    environment: str
    platform: EndpointPlatform | None
    instance: str
    min_replicas: int
    max_replicas: int
    variants: list[Variant]
    rollout: Rollout | None = None
    shadow: Shadow | None = None
    scale_to_zero: ScaleToZero | None = None

    @property
    def name(self) -> str:
        return self.model.name

    def variant_source(self, variant: Variant | Shadow) -> WeightsSource:
        """The weights of a variant's (or the shadow's) version, as the model declares them."""
        return self.model.versions[variant.version]


def json_schema() -> dict[str, Any]:
    schema = ModelEntry.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "LLMOps model registry entry"
    return schema
