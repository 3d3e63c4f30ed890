"""ModelEndpoint on EKS: a serving runtime per variant behind one internal Service.

Each variant is a Deployment (`<model>-<version>`) with its own Service. The committed
weights are the traffic split whatever the replica counts: a Gateway API `HTTPRoute`
attached to the model's Service (the GAMMA, mesh, form of the API) sends each variant its
weight's share of the requests, so a 90/10 split with one replica each serves 90/10. It
needs a Gateway API mesh implementation in the cluster (README "Traffic weights on EKS");
without one the Service balances over all the model's pods. Replicas are capacity only:
each serving variant starts with capacity for its share of `min_replicas` (at least one)
and its autoscaler follows its own load (in-flight requests per pod). Pods request `tensor_parallel` GPUs,
tolerate the GPU taint and select their pool by the pool's own labels. Weights
from S3 are copied into the pod by an init container using IAM roles for
service accounts (a training run's model.tar.gz is fetched at its object version and
unpacked); weights from the Hub are downloaded by the runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.account import partition
from components.aws.hub_token import K8S_KEY, TOKEN_ENV, token_value
from components.aws.iam import irsa_trust, policy_document, s3_read, statement
from components.aws.kubernetes import SERVING_NAMESPACE, k8s_labels
from components.aws.naming import child
from components.aws.placement import GPU_TOLERATION, pool_for
from components.context import StackContext
from components.contracts import GpuClusterOutputs, ModelEndpointArgs, ModelEndpointOutputs
from components.grouping import ResourceGroup
from llmops.catalog import load_catalog
from llmops.local.experiment_routing import PIN_HEADER
from llmops.observability import eks_runtime, workload_name
from llmops.registry import Deployment, Variant, WeightsSource
from llmops.sizing import SizingResult

VLLM_IMAGE = "vllm/vllm-openai:v0.9.2"
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.4"
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.17.0"
PORT = 8000
WEIGHTS_DIR = "/models"
ARCHIVE_NAME = "model.tar.gz"  # where an archive source is fetched to before it is unpacked
VLLM_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# The per-pod metric the HPA scales on, as prometheus-adapter exposes it (monitoring.py).
IN_FLIGHT_METRIC = {"vllm": "vllm_requests_running", "tgi": "tgi_requests_running"}


runtime_of = eks_runtime  # the EKS serving runtime (llmops.observability: its series are read there too)


def variant_replicas(weight: int, total: int) -> int:
    """A variant's starting capacity out of `total`, for its share of the load; never 0 for a non-zero
    weight. Capacity only: the HTTPRoute's weights split the traffic, not these counts."""
    if weight == 0:
        return 0
    return max(1, round(total * weight / 100))


def _container(
    dep: Deployment,
    sizing: SizingResult,
    source: WeightsSource,
    weights_local: bool,
    token_secret: pulumi.Input[str] | None = None,
) -> dict[str, Any]:
    serving = dep.model.serving
    tp = sizing.tensor_parallel
    model_ref = WEIGHTS_DIR if weights_local else (source.huggingface.repo if source.huggingface else "")
    revision = source.huggingface.revision if source.huggingface and not weights_local else ""
    env: list[dict[str, Any]] = []
    if source.gated:
        if token_secret is None:
            raise ValueError(f"{dep.name}: a gated hub repository needs the model's token Secret")
        # Required, not optional: a pod without its token would only fail later, at the download.
        env.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": token_secret, "key": K8S_KEY}}})
    if runtime_of(dep) == "vllm":
        args = [
            "--model", model_ref,
            "--served-model-name", dep.name,
            "--tensor-parallel-size", str(tp),
            "--max-model-len", str(serving.max_context),
            "--max-num-seqs", str(serving.concurrency),
            "--port", str(PORT),
        ]  # fmt: skip
        if revision:
            args += ["--revision", revision]
        if serving.dtype in VLLM_DTYPES:
            args += ["--dtype", VLLM_DTYPES[serving.dtype]]
        elif serving.dtype == "fp8":
            args += ["--quantization", "fp8"]
        image = VLLM_IMAGE
    else:
        env += [
            {"name": "MODEL_ID", "value": model_ref},
            {"name": "NUM_SHARD", "value": str(tp)},
            {"name": "MAX_TOTAL_TOKENS", "value": str(serving.max_context)},
            {"name": "MAX_INPUT_TOKENS", "value": str(max(1, serving.max_context - serving.max_new_tokens))},
            {"name": "MAX_CONCURRENT_REQUESTS", "value": str(serving.concurrency)},
            {"name": "PORT", "value": str(PORT)},
        ]
        if revision:
            env.append({"name": "REVISION", "value": revision})
        args, image = [], TGI_IMAGE
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "name": "server",
        "image": image,
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": _resources(sizing),
        # Loading weights takes minutes: the startup probe allows 30, then liveness takes over.
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": 180},
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 30, "failureThreshold": 4, "timeoutSeconds": 10},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]
        + ([{"name": "weights", "mountPath": WEIGHTS_DIR}] if weights_local else []),
    }


def _resources(sizing: SizingResult) -> dict[str, Any]:
    """A replica's share of the node: its GPUs' fraction of the CPUs and memory, less headroom for daemons."""
    tp = sizing.tensor_parallel
    instance = load_catalog().get(sizing.instance_type)
    share = tp / max(instance.gpus, 1)
    cpu = max(1, math.floor(instance.vcpus * share) - 1)
    memory_gib = max(8, math.floor(instance.memory_gib * share * 0.8))
    return {
        "requests": {"cpu": str(cpu), "memory": f"{memory_gib}Gi", "nvidia.com/gpu": str(tp)},
        "limits": {"memory": f"{memory_gib}Gi", "nvidia.com/gpu": str(tp)},
    }


def build_eks_endpoint(component: ModelEndpointOutputs, name: str, args: ModelEndpointArgs) -> None:
    """The Kubernetes children of an EKS ModelEndpoint: an identity, a workload per variant, one Service."""
    ctx, dep, sizing, cluster = args.context, args.deployment, args.sizing, args.cluster
    if cluster is None or cluster.kube_provider is None:
        raise ValueError(f"{dep.name}: an EKS endpoint needs the stack's GpuCluster")
    model = dep.model
    pool = pool_for(ctx, sizing.instance_type, sizing.tensor_parallel, sizing.gpu_memory_gib, what=dep.name)
    namespace: pulumi.Input[str] = cluster.serving_namespace or SERVING_NAMESPACE
    selector = {"app.kubernetes.io/name": dep.name}
    labels = k8s_labels(ctx, model=model.name, team=model.owner, extra=selector)
    group = pulumi.ResourceOptions(parent=component)

    identity = ServingIdentity(name, ServingIdentityArgs(ctx, dep, cluster, namespace, labels), group)
    runtime = runtime_of(dep)
    backends: dict[str, pulumi.Output[str]] = {}
    for v in dep.variants:
        variant = EksVariantArgs(
            dep,
            sizing,
            v,
            pool.selector,
            namespace,
            labels,
            selector,
            identity.account_name,
            cluster.kube_provider,
            identity.token_secret,
        )
        backends[v.version] = EksVariant(f"{name}-{v.version}", variant, group).service_name

    service = k8s.core.v1.Service(
        f"{name}-svc",
        metadata={
            "name": dep.name,
            "namespace": namespace,
            "labels": {**labels, "llmops.io/serving": "true", "llmops.io/runtime": runtime},
        },
        spec={
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
        opts=pulumi.ResourceOptions(parent=component, provider=cluster.kube_provider),
    )
    traffic_route(name, dep, service, backends, labels, component, cluster.kube_provider)
    host = pulumi.Output.concat(service.metadata.name, ".", service.metadata.namespace, ".svc.cluster.local")
    component.endpoint_name = service.metadata.name
    component.url = pulumi.Output.concat("http://", host, "/v1")
    component.metrics_targets = pulumi.Output.concat(host, ":80").apply(lambda t: [t])
    component.details = pulumi.Output.from_input(
        {
            "platform": "eks",
            "runtime": runtime,
            "pool": pool.name,
            "instanceType": sizing.instance_type,
            "replicas": {v.version: variant_replicas(v.weight, dep.min_replicas) for v in dep.variants},
            "weights": {v.version: v.weight for v in dep.variants},
        }
    )


def traffic_route(
    name: str,
    dep: Deployment,
    service: k8s.core.v1.Service,
    backends: dict[str, pulumi.Output[str]],
    labels: dict[str, str],
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
) -> k8s.apiextensions.CustomResource:
    """An HTTPRoute on the model's Service whose backend weights are the registry's weights; a request
    pinned to a serving version (`x-llmops-version`, as the smoke check sends) goes to that version only."""
    serving = [v for v in dep.variants if v.weight]  # a staged (zero-weight) variant gets no traffic
    refs = [{"name": backends[v.version], "port": 80, "weight": v.weight} for v in serving]
    pinned = [
        {
            "matches": [{"headers": [{"type": "Exact", "name": PIN_HEADER, "value": v.version}]}],
            "backendRefs": [{"name": backends[v.version], "port": 80}],
        }
        for v in serving
    ]
    return k8s.apiextensions.CustomResource(
        f"{name}-route",
        api_version="gateway.networking.k8s.io/v1",
        kind="HTTPRoute",
        metadata={"name": dep.name, "namespace": service.metadata.namespace, "labels": labels},
        spec={
            "parentRefs": [{"group": "", "kind": "Service", "name": service.metadata.name, "port": 80}],
            "rules": [*pinned, {"backendRefs": refs}],
        },
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )


@dataclass
class ServingIdentityArgs:
    context: StackContext
    deployment: Deployment
    cluster: GpuClusterOutputs
    namespace: pulumi.Input[str]
    labels: dict[str, str]


class ServingIdentity(ResourceGroup):
    """One Kubernetes service account per model; with S3 weights it maps (IRSA) to a role that
    reads exactly those weights, and nothing else. A model serving a gated hub repository also
    gets a Secret holding the stack's hub token (components/aws/hub_token.py)."""

    account_name: pulumi.Output[str]
    token_secret: pulumi.Output[str] | None = None

    def __init__(self, name: str, args: ServingIdentityArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/eks:ServingIdentity", name, opts)
        ctx, dep, cluster = args.context, args.deployment, args.cluster
        s3_uris = sorted({s.s3.uri for v in dep.variants if (s := dep.variant_source(v)).s3})
        annotations: dict[str, pulumi.Input[str]] = {}
        if s3_uris:
            if cluster.oidc_provider_arn is None or cluster.oidc_provider_url is None:
                raise ValueError(f"{dep.name}: S3 weights on EKS need the cluster's OIDC provider")
            role = aws.iam.Role(
                child(name, "role", limit=64),
                assume_role_policy=irsa_trust(
                    cluster.oidc_provider_arn, cluster.oidc_provider_url, SERVING_NAMESPACE, dep.name
                ),
                tags=ctx.tags(model=dep.model.name, team=dep.model.owner),
                opts=self.child_opts(),
            )
            reads = [s for i, uri in enumerate(s3_uris) for s in s3_read(f"Weights{i}", uri, ctx.settings.region)]
            archives = sorted({s.s3.uri for v in dep.variants if (s := dep.variant_source(v)).s3 and s.s3.archive})
            reads += _archive_reads(archives, ctx.settings.region)
            aws.iam.RolePolicy(
                f"{name}-role-policy", role=role.id, policy=policy_document(reads), opts=self.child_opts()
            )
            annotations["eks.amazonaws.com/role-arn"] = role.arn
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": dep.name, "namespace": args.namespace, "labels": args.labels, "annotations": annotations},
            automount_service_account_token=False,
            opts=self.child_opts(provider=cluster.kube_provider),
        )
        self.account_name = account.metadata.name
        if any(dep.variant_source(v).gated for v in dep.variants):
            secret = k8s.core.v1.Secret(
                f"{name}-hf-token",
                metadata={"name": f"{dep.name}-hf-token", "namespace": args.namespace, "labels": args.labels},
                type="Opaque",
                string_data={K8S_KEY: token_value(ctx, self)},
                opts=self.child_opts(provider=cluster.kube_provider),
            )
            self.token_secret = secret.metadata.name
        self.register_outputs({"serviceAccount": self.account_name})


def _archive_reads(uris: list[str], region: str) -> list[dict[str, Any]]:
    """A training run's archive is fetched at its object version, from the training artifacts'
    SSE-KMS bucket: GetObjectVersion on exactly those objects, and Decrypt only as S3 asks for it
    on their behalf (the key's encryption context names the bucket, which uses S3 Bucket Keys)."""
    if not uris:
        return []
    arn = partition(region)
    objects = [f"arn:{arn}:s3:::{u.removeprefix('s3://')}" for u in uris]
    buckets = sorted({f"arn:{arn}:s3:::{u.removeprefix('s3://').split('/', 1)[0]}" for u in uris})
    via_s3 = {
        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [*buckets, *(f"{b}/*" for b in buckets)]},
    }
    return [
        statement("ArchiveVersions", ["s3:GetObjectVersion"], objects),
        statement("ArchiveKey", ["kms:Decrypt"], ["*"], via_s3),
    ]


@dataclass
class EksVariantArgs:
    deployment: Deployment
    sizing: SizingResult
    variant: Variant
    node_selector: dict[str, str]  # the GPU pool's labels
    namespace: pulumi.Input[str]
    labels: dict[str, str]
    selector: dict[str, str]  # the model's pods, across variants (what the Service selects)
    service_account: pulumi.Input[str]
    provider: pulumi.ProviderResource  # the cluster's Kubernetes provider
    token_secret: pulumi.Input[str] | None = None  # the model's Secret holding the hub token (gated repos)


class EksVariant(ResourceGroup):
    """One variant version: a Deployment and the Service the model's route sends its share to, and,
    when it serves, an HPA on in-flight requests and a PodDisruptionBudget. A zero-weight variant is
    staged: its Deployment exists with no replicas, no autoscaler and no budget."""

    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: EksVariantArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/eks:Variant", name, opts)
        dep, v = args.deployment, args.variant
        source = dep.variant_source(v)
        if not (source.s3 or source.huggingface):
            raise ValueError(f"models/{dep.name}.yaml: variant {v.version}: EKS serves weights from S3 or the Hub")
        workload = workload_name(dep.name, v.version)
        replicas = variant_replicas(v.weight, dep.min_replicas)
        pod_labels = {**args.labels, "llmops.io/version": v.version}
        match = {**args.selector, "llmops.io/version": v.version}
        metadata = {"name": workload, "namespace": args.namespace, "labels": pod_labels}
        # Once an HPA owns a variant, its replica count is the HPA's; the weight sets the HPA's floor.
        k8s_opts = self.child_opts(provider=args.provider)
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=metadata,
            spec=_deployment_spec(args, source, replicas, pod_labels, match),
            opts=k8s_opts
            if replicas == 0
            else self.child_opts(provider=args.provider, ignore_changes=["spec.replicas"]),
        )
        # This version's pods only: the route's weights, not the pods' count, decide its traffic.
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": workload, "namespace": args.namespace, "labels": pod_labels},
            spec={
                "type": "ClusterIP",
                "selector": match,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        self.service_name = service.metadata.name
        if replicas > 0:
            max_replicas = max(replicas, math.ceil(dep.max_replicas * v.weight / 100))
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=metadata,
                spec=_hpa_spec(dep, deployment.metadata.name, replicas, max_replicas),
                opts=k8s_opts,
            )
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=metadata,
                spec={"maxUnavailable": 1, "selector": {"matchLabels": match}},
                opts=k8s_opts,
            )
        self.register_outputs({"service": self.service_name})


def _deployment_spec(
    args: EksVariantArgs, source: WeightsSource, replicas: int, pod_labels: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    weights_local = source.s3 is not None
    container = _container(args.deployment, args.sizing, source, weights_local, args.token_secret)
    volumes: list[dict[str, Any]] = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]
    init: list[dict[str, Any]] = []
    if source.s3:
        volumes.append({"name": "weights", "emptyDir": {}})
        init = _fetch_weights(source, container["image"])
    return {
        "replicas": replicas,
        "selector": {"matchLabels": match},
        # A GPU node rarely has room for a surge pod: replace one at a time instead.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "serviceAccountName": args.service_account,
                "nodeSelector": args.node_selector,
                "tolerations": [GPU_TOLERATION],
                "initContainers": init,
                "containers": [container],
                "volumes": volumes,
                "terminationGracePeriodSeconds": 60,
            },
        },
    }


def _fetch_weights(source: WeightsSource, serving_image: str) -> list[dict[str, Any]]:
    """Init containers that put S3 weights in the pod's weights volume. A prefix is synced; a
    training run's model.tar.gz (an adopted package, `llmops train adopt`) is fetched at its
    pinned object version and unpacked by the serving image's own Python (the AWS CLI image has
    no tar), with tarfile's `data` filter refusing links and paths that leave the volume."""
    assert source.s3 is not None
    mount = [{"name": "weights", "mountPath": WEIGHTS_DIR}]
    if not source.s3.archive:
        sync = ["s3", "sync", "--only-show-errors", source.s3.uri, WEIGHTS_DIR]
        return [{"name": "fetch-weights", "image": AWS_CLI_IMAGE, "args": sync, "volumeMounts": mount}]
    bucket, _, key = source.s3.uri.removeprefix("s3://").partition("/")
    archive = f"{WEIGHTS_DIR}/{ARCHIVE_NAME}"
    version = ["--version-id", source.s3.version_id] if source.s3.version_id else []
    fetch = ["s3api", "get-object", "--bucket", bucket, "--key", key, *version, archive]
    unpack = (
        "import os, tarfile; "
        f"tarfile.open({archive!r}).extractall({WEIGHTS_DIR!r}, filter='data'); os.remove({archive!r})"
    )
    return [
        {"name": "fetch-weights", "image": AWS_CLI_IMAGE, "args": fetch, "volumeMounts": mount},
        {"name": "unpack-weights", "image": serving_image, "command": ["python3", "-c", unpack], "volumeMounts": mount},
    ]


def _hpa_spec(dep: Deployment, deployment_name: pulumi.Input[str], replicas: int, max_replicas: int) -> dict[str, Any]:
    serving = dep.model.serving
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name},
        "minReplicas": replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": IN_FLIGHT_METRIC[runtime_of(dep)]},
                    # Scale out before a replica's sequences are all busy.
                    "target": {"type": "AverageValue", "averageValue": str(max(1, int(serving.concurrency * 0.8)))},
                },
            }
        ],
        "behavior": {
            "scaleDown": {"stabilizationWindowSeconds": serving.autoscaling.scale_in_cooldown_seconds},
            "scaleUp": {"stabilizationWindowSeconds": serving.autoscaling.scale_out_cooldown_seconds},
        },
    }
