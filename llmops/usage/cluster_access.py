"""Reaching an EKS cluster's in-cluster Prometheus from outside the cluster (CI, a laptop).

The Prometheus the monitoring stack deploys has no ingress; the EKS API server's service proxy
reaches it (`/api/v1/namespaces/<ns>/services/<service>:<port>/proxy/api/v1/...`) over the
endpoint CI already deploys through, authenticated as `aws eks get-token` does: a bearer token
that is a presigned STS GetCallerIdentity URL whose signature covers the `x-k8s-aws-id` header
naming the cluster. botocore signs it; no kubectl, no aws CLI. The cluster's endpoint, CA and
name come from the stack's `cluster` output; the proxy needs `get` on `services/proxy` for that
one Service (the `llmops-usage-reader` Role the monitoring stack binds to the access entries'
`llmops:usage-readers` group).
"""

from __future__ import annotations

import base64
import binascii
import ssl
import time
from collections.abc import Generator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from llmops.experiments.prometheus import PrometheusSource, SourceError

# The Kubernetes group whose members may get the Prometheus Service's proxy (components/aws:
# the experiment role's access entry carries it; the monitoring stack's Role is bound to it).
USAGE_READERS = "llmops:usage-readers"
TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_SECONDS = 60  # what `aws eks get-token` signs; EKS honours a token for 15 minutes
RENEW_SECONDS = 600.0


def eks_token(sts: Any, cluster_name: str) -> str:
    """A bearer token for `cluster_name`'s API server, from an STS client (its credentials and region)."""

    def name_the_cluster(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster_name

    event = "before-sign.sts.GetCallerIdentity"
    sts.meta.events.register(event, name_the_cluster)
    try:
        url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=PRESIGN_SECONDS, HttpMethod="GET")
    finally:
        sts.meta.events.unregister(event, name_the_cluster)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class EksAuth(httpx.Auth):
    """Bearer auth with an EKS token, renewed before the API server stops accepting it."""

    def __init__(self, sts: Any, cluster_name: str, clock: Any = time.monotonic) -> None:
        self._sts, self._cluster, self._clock = sts, cluster_name, clock
        self._token, self._made = "", 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._token or self._clock() - self._made > RENEW_SECONDS:
            self._token, self._made = eks_token(self._sts, self._cluster), self._clock()
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def proxy_path(prometheus_url: str) -> str:
    """The API server path that proxies to the in-cluster URL `http://<service>.<ns>.svc...:<port>`."""
    parts = urlsplit(prometheus_url)
    labels = (parts.hostname or "").split(".")
    if len(labels) < 3 or labels[2] != "svc" or parts.port is None:
        raise SourceError(f"{prometheus_url!r} is not an in-cluster Service URL (http://<service>.<ns>.svc:<port>)")
    return f"/api/v1/namespaces/{labels[1]}/services/{labels[0]}:{parts.port}/proxy"


def _refusal(response: httpx.Response) -> None:
    """The API server's own refusals (a Kubernetes Status: no access, no such Service, no pods) as
    one line saying what to fix; Prometheus' answers pass through to PrometheusSource."""
    if response.is_success:
        return
    response.read()
    try:
        body = response.json()
    except ValueError:
        return
    if not isinstance(body, dict) or body.get("kind") != "Status":
        return
    message = body.get("message") or body.get("reason") or response.status_code
    hint = {
        401: "the API server did not accept the EKS token: does the caller's role have an access entry?",
        403: f"the caller may not get services/proxy there: its access entry needs the group {USAGE_READERS}",
    }.get(response.status_code, "")
    raise SourceError(f"the EKS API server refused the Prometheus query ({response.status_code}): {message}. {hint}")


def cluster_prometheus(
    cluster: Mapping[str, Any], prometheus_url: str, sts: Any, *, timeout: float = 30.0
) -> PrometheusSource:
    """The stack's Prometheus through its cluster's API server; `cluster` is the stack's `cluster`
    output ({name, endpoint, certificateAuthority}: the CA as EKS gives it, base64 PEM)."""
    missing = [k for k in ("name", "endpoint", "certificateAuthority") if not cluster.get(k)]
    if missing:
        raise SourceError(f"the stack's cluster output lacks {', '.join(missing)}: a deploy of the stack exports it")
    try:
        ca = base64.b64decode(cluster["certificateAuthority"], validate=True).decode()
        tls = ssl.create_default_context(cadata=ca)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise SourceError(f"the stack's cluster certificateAuthority is not a base64 PEM certificate: {exc}") from None
    client = httpx.Client(
        verify=tls,
        auth=EksAuth(sts, str(cluster["name"])),
        timeout=timeout,
        event_hooks={"response": [_refusal]},
    )
    return PrometheusSource(str(cluster["endpoint"]).rstrip("/") + proxy_path(prometheus_url), client=client)
