"""Kubernetes on the stack's EKS cluster: the serving namespace, ownership labels, Helm releases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.context import StackContext

SERVING_NAMESPACE = "llmops"


def k8s_labels(ctx: StackContext, *, model: str, team: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Kubernetes labels carrying the same ownership keys as AWS tags."""
    return {
        **ctx.tags(model=model, team=team),
        "app.kubernetes.io/managed-by": "llmops",
        **(extra or {}),
    }


def helm_release(
    component: pulumi.Resource,
    name: str,
    release: str,
    chart: tuple[str, str, str],
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A Helm release of a pinned chart; atomic, so a failed upgrade rolls back."""
    repo, chart_name, version = chart
    return k8s.helm.v3.Release(
        f"{name}-{release}",
        name=release,
        chart=chart_name,
        version=version,
        repository_opts={"repo": repo},
        namespace=namespace,
        values=values,
        atomic=True,
        cleanup_on_fail=True,
        timeout=900,
        opts=opts,
    )
