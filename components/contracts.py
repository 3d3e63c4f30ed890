"""What each capability promises: its typed Args and the outputs its target builders fill in.

The capability modules (`gpu_cluster`, `model_endpoint`, `training_job`,
`monitoring`) subclass the output classes here and pick a builder for the
stack's target; the builders in `components/aws/` and `components/local/` are
typed against this module alone. So imports run one way:
capability module -> target builder -> contracts -> core (`llmops`), and a
builder never imports the module that chose it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.context import StackContext
from llmops.footprint import Footprint
from llmops.registry import Deployment, ModelEntry
from llmops.sizing import SizingResult

# --------------------------------------------------------------------------- GpuCluster


class GpuClusterOutputs(pulumi.ComponentResource):
    """Where GPU workloads run; what endpoints, training and monitoring read from it."""

    # aws
    kube_provider: Any = None
    kubeconfig: pulumi.Output[str] | None = None  # secret; a model stack's provider is built on it
    cluster_name: pulumi.Output[str] | None = None
    # The API server's URL and CA (base64 PEM): `llmops cost --measured` reaches Prometheus through it.
    cluster_endpoint: pulumi.Output[str] | None = None
    cluster_ca: pulumi.Output[str] | None = None
    oidc_provider_arn: pulumi.Output[str] | None = None
    oidc_provider_url: pulumi.Output[str] | None = None
    vpc_id: pulumi.Output[str] | None = None
    private_subnet_ids: pulumi.Output[list[str]] | None = None
    security_group_id: pulumi.Output[str] | None = None
    # Where endpoints and training Jobs on the cluster run.
    serving_namespace: pulumi.Output[str] | None = None
    # Stack-wide model data: the KMS key and the bucket endpoints capture requests into.
    data_key_arn: pulumi.Output[str] | None = None
    capture_bucket: pulumi.Output[str] | None = None
    capture_bucket_arn: pulumi.Output[str] | None = None
    # local
    inventory: pulumi.Output[dict[str, Any]] | None = None


@dataclass
class GpuClusterArgs:
    context: StackContext
    # GPU memory (GiB) and GPU count each workload needs, by workload name; the
    # local pool refuses at preview what this machine cannot hold.
    demands: dict[str, dict[str, Any]] = field(default_factory=dict)
    # aws: which shared parts the stack's deployments use (None: all of them).
    footprint: Footprint | None = None


# --------------------------------------------------------------------------- TrainingJob


class TrainingJobOutputs(pulumi.ComponentResource):
    """A training run's artifact (what an endpoint serves when its source is `@training`)."""

    artifact_uri: pulumi.Output[str]
    artifact_sha256: pulumi.Output[str] | None = None
    metrics: pulumi.Output[dict[str, Any]] | None = None
    pipeline_arn: pulumi.Output[str] | None = None
    package_group: pulumi.Output[str] | None = None  # where the pipeline registers its packages
    # Dataset, commit and hyperparameters that made the artifact (llmops.datasets.lineage.record).
    lineage: pulumi.Output[dict[str, Any]] | None = None
    # local: the run's package (artifact, spec digest, gates passed, record path), for `llmops train adopt`.
    package: pulumi.Output[dict[str, Any]] | None = None


@dataclass
class TrainingJobArgs:
    context: StackContext
    model: ModelEntry
    cluster: GpuClusterOutputs | None = None


# --------------------------------------------------------------------------- ModelEndpoint


class ModelEndpointOutputs(pulumi.ComponentResource):
    """A model behind one URL; monitoring reads its name, scrape targets and sizing."""

    url: pulumi.Output[str]
    endpoint_name: pulumi.Output[str]
    # Prometheus scrape targets (host:port) for local endpoints and in-cluster services.
    metrics_targets: pulumi.Output[list[str]] | None = None
    details: pulumi.Output[dict[str, Any]] | None = None
    # What the endpoint was sized to (GPUs per instance scale its GPU memory alarm).
    sizing: SizingResult | None = None


@dataclass
class ModelEndpointArgs:
    context: StackContext
    deployment: Deployment
    sizing: SizingResult
    cluster: GpuClusterOutputs | None = None
    training: TrainingJobOutputs | None = None
    # Evaluations that must pass before the endpoint's new replicas start (local target).
    evaluations: list[Any] = field(default_factory=list)


# --------------------------------------------------------------------------- MonitoringStack


class MonitoringStackOutputs(pulumi.ComponentResource):
    prometheus_url: pulumi.Output[str] | None = None
    dashboard_url: pulumi.Output[str] | None = None  # local: the dashboard's page of every model
    alarm_topic_arn: pulumi.Output[str] | None = None
    dashboard_name: pulumi.Output[str] | None = None


@dataclass
class MonitoringStackArgs:
    context: StackContext
    endpoints: dict[str, ModelEndpointOutputs] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    cluster: GpuClusterOutputs | None = None
    # What the local dashboard shows beside Prometheus: evaluation results and lineage per model.
    evaluations: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    # A model stack (llmops.layout): the platform stack's alarm topic its alarms notify.
    alarm_topic_arn: pulumi.Input[str] | None = None


# --------------------------------------------------------------------------- DriftMonitor


class DriftMonitorOutputs(pulumi.ComponentResource):
    metrics_url: pulumi.Output[str] | None = None  # local: the monitor's /metrics
    schedule_arn: pulumi.Output[str] | None = None  # aws: the EventBridge schedule rule
    alarm_name: pulumi.Output[str] | None = None  # aws: the CloudWatch drift alarm


@dataclass
class DriftMonitorArgs:
    context: StackContext
    deployment: Deployment
    dataset: str  # registry dataset whose eval split is the reference
    cluster: GpuClusterOutputs | None = None  # aws: holds the capture bucket and its key
    alarm_topic_arn: pulumi.Input[str] | None = None  # aws: where the drift alarm notifies
