"""Names of AWS and Kubernetes children: logical names that keep physical names within limits.

A child's logical name is also the stem of its physical name where the provider
auto-names it (pulumi-aws appends "-" and 7 hex characters, pulumi-kubernetes "-"
and 8 characters), so `child()` keeps the logical name short enough for the AWS
limit of the resource it names. Auto-naming is what lets a replaced resource be
created before the old one is deleted. Names fixed by contract (a SageMaker
endpoint's invocation name, an alarm the endpoint rolls back on) live here too.
"""

from __future__ import annotations

from components.context import StackContext, short_name

AWS_AUTONAME_SUFFIX = 8  # "-" + 7 random hex characters
K8S_AUTONAME_SUFFIX = 9  # "-" + 8 random characters
SLO_ALARMS = ("p95-latency", "error-rate", "gpu-memory")


def child(name: str, suffix: str, *, limit: int = 63, autonamed: bool = True) -> str:
    """The logical name of a child; auto-named physical names still fit `limit`."""
    return short_name(name, suffix, max_len=limit - (AWS_AUTONAME_SUFFIX if autonamed else 0))


def sagemaker_endpoint_name(ctx: StackContext, model: str) -> str:
    """The endpoint's fixed name (its invocation URL): one per model and environment (or review stack)."""
    return short_name("llmops", ctx.physical_scope, model, max_len=63)


def slo_alarm_name(endpoint_name: str, slo: str) -> str:
    """The CloudWatch alarm of one SLO; the endpoint rolls a deployment back on it."""
    return f"{endpoint_name}-{slo}"
