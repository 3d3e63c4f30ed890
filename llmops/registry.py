"""The model registry: one YAML file per model under `models/`, validated by pydantic.

Everything a registry change could get wrong is reported here, at review time,
as `models/FILE.yaml:LINE: field.path: message`, every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llmops.catalog import load_catalog
from llmops.settings import StackSettings, environments

SCHEMA_HEADER = "# yaml-language-server: $schema=schema.json"
TRAINING_OUTPUT = "@training"  # `source.local` value: serve this model's own training artifact.
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"

Runtime = Literal["tgi", "lmi", "vllm", "transformers"]
Dtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"]
EndpointPlatform = Literal["sagemaker", "eks"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HuggingFaceSource(_Model):
    repo: str = Field(pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$", description="Hub repository id.")
    revision: str = Field(default="", description="Commit sha (40 hex) to pin; a branch is unpinned.")

    @property
    def pinned(self) -> bool:
        return bool(SHA_RE.match(self.revision))


class S3Source(_Model):
    uri: str = Field(pattern=r"^s3://[a-z0-9.-]{3,63}/.+", description="Prefix holding the weights.")
    version_id: str | None = Field(default=None, description="Object version or content hash that pins it.")

    @property
    def pinned(self) -> bool:
        return bool(self.version_id)


class WeightsSource(_Model):
    """Where the weights come from: exactly one of huggingface, s3, local."""

    huggingface: HuggingFaceSource | None = None
    s3: S3Source | None = None
    local: str | None = Field(
        default=None,
        description=f"A path on this machine, or {TRAINING_OUTPUT!r} for this model's own training artifact.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> WeightsSource:
        given = [k for k in ("huggingface", "s3", "local") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of huggingface, s3, local (got {', '.join(given) or 'none'})")
        return self

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
    def uri(self) -> str:
        if self.huggingface:
            return f"hf://{self.huggingface.repo}@{self.huggingface.revision}"
        if self.s3:
            return self.s3.uri
        return f"file://{self.local}"


class Source(WeightsSource):
    config: str = Field(
        pattern=r"^configs/[A-Za-z0-9._-]+\.json$",
        description="transformers config.json under models/configs/, used for offline sizing.",
    )


class Variant(_Model):
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,20}$")
    weight: int = Field(ge=0, le=100, description="Share of traffic, percent.")
    source: WeightsSource | None = Field(default=None, description="Weights of this version, if not the model's.")


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


class Autoscaling(_Model):
    target_invocations_per_replica: int = Field(
        default=60, ge=1, description="Requests per replica per minute that autoscaling aims for."
    )
    scale_in_cooldown_seconds: int = Field(default=300, ge=0)
    scale_out_cooldown_seconds: int = Field(default=60, ge=0)


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
    metric: str = Field(min_length=1)
    threshold: float
    result: float | None = None
    higher_is_better: bool = True

    @property
    def passed(self) -> bool:
        if self.result is None:
            return False
        return self.result >= self.threshold if self.higher_is_better else self.result <= self.threshold


class Compliance(_Model):
    licence: str = Field(min_length=1)
    model_card: str = Field(min_length=1)
    evaluation: EvaluationGate | None = None


class ModelEntry(_Model):
    name: str = Field(pattern=NAME_RE, description="DNS-safe, at most 40 characters; equals the file stem.")
    owner: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Owning team.")
    description: str = Field(min_length=1)
    task: Literal["text-generation", "embeddings", "reranking", "classification"]
    source: Source
    serving: Serving
    deployments: dict[str, DeploymentOverride | None] = Field(min_length=1)
    training: Training | None = None
    monitoring: Monitoring
    compliance: Compliance
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _training_output(self) -> ModelEntry:
        if self.source.local == TRAINING_OUTPUT and self.training is None:
            raise ValueError(f"source.local is {TRAINING_OUTPUT!r} but the model has no training section")
        return self

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

    @property
    def name(self) -> str:
        return self.model.name

    def variant_source(self, variant: Variant) -> WeightsSource:
        return variant.source or self.model.source


# --------------------------------------------------------------------------- loading

# Limits that turn hostile or accidental garbage into a located problem instead of a hang
# or a crash. A real entry is a few KB and nests about six levels deep.
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 50_000  # aliases can expand a small file exponentially ("billion laughs")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
# libyaml parses an entry ~30x faster than a pure-Python parser; 1,000 files must validate in well under 2 s.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in a registry file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(file)'}: {self.message}"


class RegistryError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


_ABSENT = object()


def _child(node: Any, part: Any) -> Any:
    """`node[part]` when the parsed data holds it, else _ABSENT (pydantic's loc also names union members)."""
    if isinstance(node, dict):
        try:
            return node.get(part, _ABSENT)
        except TypeError:  # an unhashable loc part
            return _ABSENT
    if isinstance(node, list) and isinstance(part, int) and not isinstance(part, bool) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


@dataclass
class Located:
    """A YAML document as plain data, with the 1-based line of every mapping key and sequence item."""

    data: Any
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def locate(self, loc: tuple[Any, ...], *, keep_last: bool = False) -> tuple[int, str]:
        """(line, dotted path) of the deepest part of `loc` present in the document.

        Parts absent from the document are pydantic's union-member tags and are
        skipped; with `keep_last` the final part is kept (a missing field's name).
        """
        node, line, shown = self.data, 1, ""
        path: tuple[Any, ...] = ()
        for i, part in enumerate(loc):
            child = _child(node, part)
            if child is _ABSENT:
                if keep_last and i == len(loc) - 1:
                    shown = _join(shown, part, is_index=False)
                continue
            shown = _join(shown, part, is_index=isinstance(node, list))
            path = (*path, part)
            line = self.lines.get(path, line)
            node = child
        return line, shown


def _join(shown: str, part: Any, *, is_index: bool) -> str:
    if is_index:
        return f"{shown}[{part}]"
    return f"{shown}.{part}" if shown else str(part)


class _TooLarge(Exception):
    pass


class _Builder:
    """Builds plain data from a composed YAML node tree, recording lines and reporting
    what plain YAML loaders accept silently (duplicate keys) or crash on (deep nesting)."""

    def __init__(self) -> None:
        self.constructor = SafeConstructor()
        self.lines: dict[tuple[Any, ...], int] = {}
        self.problems: list[tuple[int, str, str]] = []  # (line, path, message)
        self.fatal = False
        self.nodes = 0

    def problem(self, node: Node, shown: str, message: str, *, fatal: bool = True) -> None:
        self.problems.append((node.start_mark.line + 1, shown, message))
        self.fatal = self.fatal or fatal

    def build(self, node: Node, path: tuple[Any, ...], shown: str, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooLarge(f"the document expands to more than {MAX_NODES} values (aliases?)")
        if depth > MAX_DEPTH:
            self.problem(node, shown, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if isinstance(node, ScalarNode):
            if node.tag == _STR_TAG:
                return node.value  # most scalars: skip the generic constructor
            try:
                return self.constructor.construct_object(node)
            except ConstructorError as exc:
                self.problem(node, shown, f"cannot read this value: {exc.problem}")
            except (ValueError, OverflowError, TypeError) as exc:  # e.g. an impossible !!timestamp
                self.problem(node, shown, f"cannot read this value: {exc}")
            return None
        if isinstance(node, SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, i), f"{shown}[{i}]", depth + 1))
            return items
        if isinstance(node, MappingNode):
            return self.mapping(node, path, shown, depth)
        self.problem(node, shown, "unsupported YAML node")
        return None

    def mapping(self, node: MappingNode, path: tuple[Any, ...], shown: str, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
            else:
                self.put(out, key_node, value_node, path, shown, depth, explicit=True)
        # `<<: *defaults` fills in keys the mapping does not state itself.
        for merge in merges:
            for source in merge.value if isinstance(merge, SequenceNode) else [merge]:
                if not isinstance(source, MappingNode):
                    self.problem(source, shown, "a merge (<<) needs a mapping or a list of mappings")
                    continue
                for key_node, value_node in source.value:
                    if key_node.tag != _MERGE_TAG:
                        self.put(out, key_node, value_node, path, shown, depth, explicit=False)
        return out

    def put(
        self,
        out: dict[Any, Any],
        key_node: Node,
        value_node: Node,
        path: tuple[Any, ...],
        shown: str,
        depth: int,
        *,
        explicit: bool,
    ) -> None:
        key = self.build(key_node, (*path, "<key>"), shown, depth + 1)
        try:
            hash(key)
        except TypeError:
            self.problem(key_node, shown, "a key must be a plain value, not a list or mapping")
            return
        line = key_node.start_mark.line + 1
        if key in out:
            if explicit:
                first = self.lines.get((*path, key), line)
                self.problem(
                    key_node, _join(shown, key, is_index=False), f"duplicate key (first on line {first})", fatal=False
                )
            return
        self.lines[(*path, key)] = line
        out[key] = self.build(value_node, (*path, key), _join(shown, key, is_index=False), depth + 1)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return (mark.line + 1 if mark is not None else 1), reason or str(exc)
    if isinstance(exc, yaml.reader.ReaderError):
        return text.count("\n", 0, max(exc.position, 0)) + 1, f"unacceptable character #x{exc.character:04x}"
    return 1, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def parse_text(text: str, display: str) -> tuple[Located | None, list[Problem]]:
    """YAML text -> data with lines; problems that stop validation leave no data."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        line, reason = _yaml_problem(exc, text)
        if "\t" in (text.splitlines()[line - 1 : line] or [""])[0]:
            reason += " (a tab? YAML indents with spaces)"
        return None, [Problem(display, line, "", f"malformed YAML: {reason}")]
    if node is None:
        return None, [Problem(display, 1, "", "the file is empty: it must hold a model entry (a mapping)")]
    builder = _Builder()
    try:
        data = builder.build(node, (), "", 0)
    except _TooLarge as exc:
        return None, [Problem(display, 1, "", str(exc))]
    problems = [Problem(display, line, shown, message) for line, shown, message in builder.problems]
    return (None if builder.fatal else Located(data, builder.lines)), problems


def _pydantic_problems(exc: ValidationError, located: Located, display: str) -> list[Problem]:
    # A value that fails every member of a union yields one error per member at the same
    # place: merge them into one line.
    merged: dict[tuple[int, str], list[str]] = {}
    got: dict[tuple[int, str], str] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        where = located.locate(loc, keep_last=err["type"] == "missing")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            if err["type"] != "value_error" and not isinstance(value, dict | list) and len(repr(value)) <= 60:
                got[where] = f" (got {value!r})"
        messages = merged.setdefault(where, [])
        if msg not in messages:
            messages.append(msg)
    return [
        Problem(display, line, shown, _merge_messages(msgs) + got.get((line, shown), ""))
        for (line, shown), msgs in merged.items()
    ]


def _merge_messages(messages: list[str]) -> str:
    """'Input should be a valid integer', '… a valid string' -> '… a valid integer or string'."""
    prefix = "Input should be a valid "
    if len(messages) > 1 and all(m.startswith(prefix) for m in messages):
        kinds = [m.removeprefix(prefix) for m in messages]
        return prefix + ", ".join(kinds[:-1]) + " or " + kinds[-1]
    return "; ".join(messages)


def parse_file(path: Path, display: str) -> tuple[ModelEntry | None, Located | None, list[Problem]]:
    """Parse and validate one file in isolation. The entry is None when it is unusable;
    problems that do not stop its use (a missing schema header) come with it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, None, [Problem(display, 1, "", f"cannot read the file: {exc.strerror or exc}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, None, [Problem(display, 1, "", f"larger than {MAX_FILE_BYTES} bytes: not a model entry")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, None, [Problem(display, line, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")]
    problems: list[Problem] = []
    if not text.startswith(SCHEMA_HEADER):
        problems.append(Problem(display, 1, "", f"the first line must be `{SCHEMA_HEADER}` (editor validation)"))
    located, parse_problems = parse_text(text, display)
    problems.extend(parse_problems)
    if located is None:
        return None, None, problems
    if not isinstance(located.data, dict):
        kind = "a list" if isinstance(located.data, list) else f"a {type(located.data).__name__}"
        problems.append(Problem(display, 1, "", f"the file must hold a mapping (a model entry), not {kind}"))
        return None, located, problems
    try:
        entry = ModelEntry.model_validate(located.data)
    except ValidationError as exc:
        return None, located, problems + _pydantic_problems(exc, located, display)
    return (None if parse_problems else entry), located, problems


@dataclass
class Registry:
    root: Path
    models: dict[str, ModelEntry] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    # How each model's file is shown and its parsed lines, to locate later checks (sizing).
    displays: dict[str, str] = field(default_factory=dict)
    located: dict[str, Located] = field(default_factory=dict)

    def deployed_to(self, environment: str) -> list[Deployment]:
        return [m.deployment(environment) for _, m in sorted(self.models.items()) if environment in m.deployments]

    def problem(self, model: str, loc: tuple[int | str, ...], message: str) -> Problem:
        """A problem about `model`, located at `loc` in its file."""
        display = self.displays.get(model, f"{self.root.name}/{model}.yaml")
        located = self.located.get(model)
        line, shown = located.locate(loc, keep_last=True) if located else (1, ".".join(map(str, loc)))
        return Problem(display, line, shown, message)


def _cross_checks(
    entry: ModelEntry, located: Located, path: Path, display: str, stacks: dict[str, StackSettings], models_dir: Path
) -> list[Problem]:
    """Checks that need more than the file: its name, the catalog, the stacks."""
    problems: list[Problem] = []

    def add(loc: tuple[int | str, ...], message: str) -> None:
        line, shown = located.locate(loc, keep_last=True)
        problems.append(Problem(display, line, shown, message))

    if entry.name != path.stem:
        add(("name",), f"name {entry.name!r} differs from the file name {path.stem!r}")
    catalog = set(load_catalog().names())
    if entry.serving.instance != "auto" and entry.serving.instance not in catalog:
        add(("serving", "instance"), f"unknown instance type {entry.serving.instance!r}")
    if entry.training and entry.training.instance not in catalog:
        add(("training", "instance"), f"unknown instance type {entry.training.instance!r}")
    if not (models_dir / entry.source.config).is_file():
        add(("source", "config"), f"no such file: {models_dir.name}/{entry.source.config}")

    envs = environments(stacks)
    production = {s.environment for s in stacks.values() if s.production}
    for env, override in entry.deployments.items():
        if stacks and env not in envs:
            add(("deployments", env), f"no stack deploys environment {env!r} (known: {', '.join(sorted(envs))})")
        if override and override.instance and override.instance not in catalog:
            add(("deployments", env, "instance"), f"unknown instance type {override.instance!r}")
        deployment = entry.deployment(env)
        if deployment.min_replicas > deployment.max_replicas:
            add(
                ("deployments", env, "min_replicas"),
                f"min_replicas ({deployment.min_replicas}) > max_replicas ({deployment.max_replicas}) in {env!r}",
            )
        if env in production:
            _production_checks(entry, deployment, add)
    _training_checks(entry, [stacks[s] for env in entry.deployments for s in envs.get(env, [])], add)
    _dataset_checks(entry, models_dir, add)
    return problems


def _dataset_checks(entry: ModelEntry, models_dir: Path, add: _Add) -> None:
    """A dataset reference names an entry of models/datasets/ at that version."""
    names = []
    if entry.training and entry.training.dataset.name:
        names.append((("training", "dataset", "name"), entry.training.dataset.name, entry.training.dataset.version))
    if entry.monitoring.drift and entry.monitoring.drift.dataset:
        names.append((("monitoring", "drift", "dataset"), entry.monitoring.drift.dataset, None))
    elif entry.monitoring.drift and not entry.monitoring.drift_dataset(entry):
        add(("monitoring", "drift"), "drift needs a reference dataset: set `dataset` or train from a registry dataset")
    if not names:
        return
    from llmops.datasets.registry import load_datasets  # the dataset registry builds on this module

    datasets, _ = load_datasets(models_dir.parent, models_dir)
    for loc, name, version in names:
        try:
            datasets.get(name, version)
        except KeyError as exc:
            add(loc, str(exc.args[0]))


_Add = Callable[[tuple[int | str, ...], str], None]


def _production_checks(entry: ModelEntry, deployment: Deployment, add: _Add) -> None:
    """A prod environment serves only pinned weights that passed their evaluation gate."""
    env = deployment.environment
    for i, variant in enumerate(deployment.variants):
        src = deployment.variant_source(variant)
        if src.pinned:
            continue
        if variant.source is None:
            loc: tuple[int | str, ...] = ("source", "huggingface", "revision") if src.huggingface else ("source", "s3")
        else:
            override = entry.deployments.get(env)
            where: tuple[str, ...] = (
                ("deployments", env) if override is not None and override.variants else ("serving",)
            )
            loc = (*where, "variants", i, "source")
        add(loc, f"unpinned revision for production environment {env!r}: pin a commit sha or version id")
    gate = entry.compliance.evaluation
    if gate is None:
        add(("compliance", "evaluation"), f"production environment {env!r} needs an evaluation gate")
    elif not gate.passed:
        got = "no result" if gate.result is None else f"result {gate.result}"
        add(
            ("compliance", "evaluation", "result"),
            f"evaluation gate {gate.metric} fails for production environment {env!r}: "
            f"{got}, threshold {gate.threshold}",
        )


def _training_checks(entry: ModelEntry, stacks: list[StackSettings], add: _Add) -> None:
    """Training settings that only fail once a job is created on AWS."""
    training = entry.training
    aws = [s for s in stacks if s.target == "aws"]
    if training is None or not aws:
        return
    if training.checkpoint and not training.checkpoint.startswith("s3://"):
        add(("training", "checkpoint"), f"checkpoints on AWS go to s3://, got {training.checkpoint!r}")
    for settings in aws:
        if training.platform == "eks" and training.pool:
            pools = [p.name for p in settings.cluster.gpu_pools]
            if training.pool not in pools:
                add(("training", "pool"), f"no GPU pool {training.pool!r} in environment {settings.environment!r}")


def validate(
    models_dir: Path, stacks: dict[str, StackSettings], paths: list[Path] | None = None
) -> tuple[Registry, list[Problem]]:
    """Validate the registry (or only `paths`, still checked against the rest for duplicate names)."""
    registry = Registry(root=models_dir)
    problems: list[Problem] = []
    # Files globbed from models_dir are shown and compared by name; resolving each costs more than parsing it.
    root = models_dir.resolve()
    inside = sorted(models_dir.glob("*.yaml"))
    explicit = {p.resolve() for p in paths or []}
    names = {f.name for f in inside}
    extra = [p for p in paths or [] if not (p.resolve().parent == root and p.name in names)]

    parsed: list[tuple[Path, str, bool, ModelEntry, Located]] = []
    for path, is_inside in [(f, True) for f in inside] + [(p, False) for p in extra]:
        display = f"{models_dir.name}/{path.name}" if is_inside else _display(path, models_dir)
        checking = not explicit or (root / path.name if is_inside else path.resolve()) in explicit
        entry, located, file_problems = parse_file(path, display)
        if checking:
            problems.extend(file_problems)
        if entry is not None and located is not None:
            parsed.append((path, display, checking, entry, located))

    # A name belongs to the file named after it; any other file claiming it repeats it.
    owners: dict[str, str] = {}
    for _path, display, _, entry, _ in sorted(parsed, key=lambda p: (p[3].name != p[0].stem, p[1])):
        owners.setdefault(entry.name, display)
    for path, display, checking, entry, located in parsed:
        if owners[entry.name] != display:
            if checking:
                line, _ = located.locate(("name",))
                problems.append(Problem(display, line, "name", f"name {entry.name!r} repeats {owners[entry.name]}"))
            continue
        if checking:
            problems.extend(_cross_checks(entry, located, path, display, stacks, models_dir))
        registry.models[entry.name] = entry
        registry.files[entry.name] = path
        registry.displays[entry.name] = display
        registry.located[entry.name] = located
    return registry, sorted(problems, key=lambda p: (p.file, p.line or 0, p.path, p.message))


def _display(path: Path, models_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(models_dir.resolve().parent))
    except ValueError:
        return str(path)


def load_registry(models_dir: Path, stacks: dict[str, StackSettings]) -> Registry:
    """The whole registry, or RegistryError listing every problem."""
    registry, problems = validate(models_dir, stacks)
    if problems:
        raise RegistryError(problems)
    return registry


def json_schema() -> dict[str, Any]:
    schema = ModelEntry.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "LLMOps model registry entry"
    return schema
