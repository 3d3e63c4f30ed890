"""The model registry: one YAML file per model under `models/`, validated by pydantic.

Everything a registry change could get wrong is reported here, at review time,
as `models/FILE.yaml:LINE: field.path: message`, every problem at once.

- `schema`: the entry's pydantic models (`ModelEntry`, `Deployment`) and the JSON schema;
- `located`: YAML parsed with line numbers, pydantic errors mapped back to lines;
- `checks`: checks across files, the catalog and the stacks (production rules);
- `loader`: `validate` / `load_registry`, giving a `Registry` or every `Problem`;
- `problems`: `Problem` and `RegistryError`;
- `served`: the registry against its git history: a version that has served keeps its
  weights (`llmops registry validate --base REF`; imported by that command only).

The names are re-exported here: `from llmops.registry import ModelEntry` is the public path.
"""

from llmops.registry.checks import cross_checks
from llmops.registry.loader import Registry, load_registry, parse_file, validate
from llmops.registry.located import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, Located, parse_text
from llmops.registry.problems import Problem, RegistryError
from llmops.registry.schema import (
    ARTIFACT_PREFIX,
    EVALS_DIR,
    NAME_RE,
    SCHEMA_HEADER,
    SHA_RE,
    TRAINING_OUTPUT,
    Autoscaling,
    Capture,
    Compliance,
    Dataset,
    Deployment,
    DeploymentOverride,
    DriftMonitoring,
    Dtype,
    EndpointPlatform,
    EvaluationGate,
    ExperimentMetric,
    HuggingFaceSource,
    ModelEntry,
    Monitoring,
    Rollout,
    Runtime,
    S3Source,
    ScaleToZero,
    Serving,
    Shadow,
    Slo,
    Source,
    Training,
    Variant,
    Variants,
    WeightsSource,
    json_schema,
)

__all__ = [
    "ARTIFACT_PREFIX",
    "EVALS_DIR",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "NAME_RE",
    "SCHEMA_HEADER",
    "SHA_RE",
    "TRAINING_OUTPUT",
    "Autoscaling",
    "Capture",
    "Compliance",
    "Dataset",
    "Deployment",
    "DeploymentOverride",
    "DriftMonitoring",
    "Dtype",
    "EndpointPlatform",
    "EvaluationGate",
    "ExperimentMetric",
    "HuggingFaceSource",
    "Located",
    "ModelEntry",
    "Monitoring",
    "Problem",
    "Registry",
    "RegistryError",
    "Rollout",
    "Runtime",
    "S3Source",
    "ScaleToZero",
    "Serving",
    "Shadow",
    "Slo",
    "Source",
    "Training",
    "Variant",
    "Variants",
    "WeightsSource",
    "cross_checks",
    "json_schema",
    "load_registry",
    "parse_file",
    "parse_text",
    "validate",
]
