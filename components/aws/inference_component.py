"""A SageMaker inference component as a Pulumi dynamic resource, through boto3.

Why a dynamic provider: an endpoint scales to zero instances only when it hosts inference
components (`ManagedInstanceScaling.MinInstanceCount: 0` on the configuration, copies
scaled to 0 by Application Auto Scaling). The pinned pulumi-aws (7.51) has no
inference-component resource; pulumi-aws-native has one, but it is a second provider
plugin (downloaded from GitHub releases, which neither this machine nor a locked-down
runner reaches) that drives the Cloud Control API for one resource type. boto3 is
already a dependency, and the four calls below are the whole life cycle.

The copy count is set at create only: afterwards Application Auto Scaling owns
`DesiredCopyCount` (0 when idle), so a diff never resets it, the way an HPA's replica
count is kept out of a Kubernetes diff. A new version updates the component in place
(`UpdateInferenceComponent`: SageMaker rolls the copies over one at a time and rolls back
on the endpoint's SLO alarms); a new endpoint, variant or name replaces it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pulumi
from botocore.exceptions import ClientError
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

WAIT_SECONDS = 3600  # a copy downloads the weights and starts the container: minutes, bounded
POLL_SECONDS = 15.0
REPLACES = ("name", "endpoint_name", "variant_name", "region")  # the component's identity
UPDATES = ("model_name", "accelerators", "min_memory_mb", "startup_timeout", "tags", "rollback_alarms")


class InferenceComponentError(Exception):
    """SageMaker could not bring the component to service (its FailureReason) or it timed out."""


def sagemaker_client(region: str) -> Any:
    import boto3

    return boto3.client("sagemaker", region_name=region)


def specification(props: dict[str, Any]) -> dict[str, Any]:
    """The model, its accelerators and memory, and how long a copy may take to start."""
    timeout = int(props["startup_timeout"])
    return {
        "ModelName": props["model_name"],
        "StartupParameters": {
            "ModelDataDownloadTimeoutInSeconds": timeout,
            "ContainerStartupHealthCheckTimeoutInSeconds": timeout,
        },
        "ComputeResourceRequirements": {
            "NumberOfAcceleratorDevicesRequired": float(props["accelerators"]),
            "MinMemoryRequiredInMb": int(props["min_memory_mb"]),
        },
    }


def deployment_config(props: dict[str, Any]) -> dict[str, Any]:
    """A new version rolls over one copy at a time and rolls back when an SLO alarm fires
    (what blue/green with auto-rollback does for a model-variant endpoint)."""
    alarms = props.get("rollback_alarms") or []
    if not alarms:
        return {}
    return {
        "DeploymentConfig": {
            "RollingUpdatePolicy": {
                "MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 180,
                "MaximumExecutionTimeoutInSeconds": 3 * 3600,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]},
        }
    }


class InferenceComponentProvider(ResourceProvider):
    """Create, update and delete one inference component, each waited on to its end state."""

    def __init__(
        self,
        client: Callable[[str], Any] = sagemaker_client,
        poll_seconds: float = POLL_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        super().__init__()
        self.client, self.poll_seconds, self.wait_seconds = client, poll_seconds, wait_seconds

    def create(self, props: dict[str, Any]) -> CreateResult:
        sm = self.client(props["region"])
        sm.create_inference_component(
            InferenceComponentName=props["name"],
            EndpointName=props["endpoint_name"],
            VariantName=props["variant_name"],
            Specification=specification(props),
            RuntimeConfig={"CopyCount": int(props["copy_count"])},
            Tags=[{"Key": k, "Value": v} for k, v in sorted((props.get("tags") or {}).items())],
        )
        return CreateResult(props["name"], {**props, "arn": self._wait_in_service(sm, props["name"], "create")})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACES if olds.get(k) != news.get(k)]
        changed = [k for k in UPDATES if olds.get(k) != news.get(k)]
        return DiffResult(
            changes=bool(replaces or changed),
            replaces=replaces,
            stables=["arn"] if not replaces else [],
            delete_before_replace=True,  # the name is fixed: the alarm and scaling target name it
        )

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        sm = self.client(news["region"])
        if any(olds.get(k) != news.get(k) for k in ("model_name", "accelerators", "min_memory_mb", "startup_timeout")):
            # No RuntimeConfig: the autoscaled copy count stays as it is.
            sm.update_inference_component(
                InferenceComponentName=id_, Specification=specification(news), **deployment_config(news)
            )
            self._wait_in_service(sm, id_, "update")
        if olds.get("tags") != news.get("tags"):
            arn = olds["arn"]
            gone = sorted(set(olds.get("tags") or {}) - set(news.get("tags") or {}))
            if gone:
                sm.delete_tags(ResourceArn=arn, TagKeys=gone)
            if news.get("tags"):
                sm.add_tags(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in sorted(news["tags"].items())])
        return UpdateResult({**news, "arn": olds["arn"]})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        sm = self.client(props["region"])
        try:
            sm.delete_inference_component(InferenceComponentName=id_)
        except ClientError as exc:
            if _not_found(exc):
                return
            raise
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                sm.describe_inference_component(InferenceComponentName=id_)
            except ClientError as exc:
                if _not_found(exc):
                    return
                raise
            if time.monotonic() > deadline:
                raise InferenceComponentError(f"inference component {id_}: still deleting after {self.wait_seconds:g}s")
            time.sleep(self.poll_seconds)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        sm = self.client(props["region"])
        try:
            found = sm.describe_inference_component(InferenceComponentName=id_)
        except ClientError as exc:
            if _not_found(exc):
                return ReadResult(None, {})  # gone: the next up creates it again
            raise
        spec = found.get("Specification") or {}
        return ReadResult(id_, {**props, "model_name": spec.get("ModelName", props.get("model_name"))})

    def _wait_in_service(self, sm: Any, name: str, action: str) -> str:
        """Poll until InService (its ARN); Failed raises with SageMaker's reason."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            found = sm.describe_inference_component(InferenceComponentName=name)
            status = found.get("InferenceComponentStatus")
            if status == "InService":
                return str(found["InferenceComponentArn"])
            if status == "Failed":
                reason = found.get("FailureReason") or "no reason given"
                raise InferenceComponentError(
                    f"inference component {name} on endpoint {found.get('EndpointName')}: {action} failed: {reason}"
                )
            if time.monotonic() > deadline:
                raise InferenceComponentError(
                    f"inference component {name}: {action} not in service after {self.wait_seconds:g}s "
                    f"(status {status})"
                )
            time.sleep(self.poll_seconds)


def _not_found(exc: ClientError) -> bool:
    """SageMaker answers a missing component with ValidationException 'Could not find …'."""
    error = exc.response.get("Error", {})
    return bool(error.get("Code") == "ValidationException" and "could not find" in str(error.get("Message")).lower())


class InferenceComponent(pulumi.dynamic.Resource, module="aws/sagemaker", name="InferenceComponent"):
    """One model version on an inference-component endpoint; `name` is its fixed physical name."""

    arn: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(InferenceComponentProvider(), name, {"arn": None, **props}, opts)
