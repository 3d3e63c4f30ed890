"""GpuCluster on the kube target: a real Kubernetes control plane on 127.0.0.1 with kwok GPU nodes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
`KubeProcess` resources of the stack (binaries from `make kube-tools`), with their
certificates, keys, data and logs under `<stateDir>/kube`. Each GPU pool of the stack file
becomes kwok nodes labelled and tainted as the EKS node groups are, and a
pulumi-kubernetes `Provider` on the admin kubeconfig is what the EKS builders use here.
The ports are the stack's `basePort` onwards, in the order of `PORTS`.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components.aws.kubernetes import SERVING_NAMESPACE
from components.context import StackContext
from components.contracts import GpuClusterArgs, GpuClusterOutputs
from components.kube.nodes import KWOK_ANNOTATION, KwokNodes, pool_nodes
from components.kube.pki import HOST, PkiPaths
from components.kube.processes import KubePki, KubeProcess

PORTS = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
# Shipped by `make kube-tools`: the binaries, kwok's stages, the Gateway API CRDs.
TOOLS_DIR = ".kube-tools"
HTTPROUTE_CRD = "share/crds/gateway.networking.k8s.io_httproutes.yaml"


def _argv(tools: Path, state: Path, ports: dict[str, int], pki: PkiPaths) -> dict[str, list[str]]:
    """Each process's command line; every listener on 127.0.0.1."""
    b, kc = tools / "bin", str(pki.kubeconfig)
    server = f"https://{HOST}:{ports['apiserver']}"
    common = ["--kubeconfig", kc, "--bind-address", HOST, "--leader-elect=false"]
    return {
        "etcd": [
            str(b / "etcd"), "--name", "default", "--data-dir", str(state / "etcd"),
            "--listen-client-urls", f"http://{HOST}:{ports['etcd']}", "--advertise-client-urls", f"http://{HOST}:{ports['etcd']}",
            "--listen-peer-urls", f"http://{HOST}:{ports['etcd-peer']}",
            "--initial-advertise-peer-urls", f"http://{HOST}:{ports['etcd-peer']}",
            "--initial-cluster", f"default=http://{HOST}:{ports['etcd-peer']}",
        ],
        "apiserver": [
            str(b / "kube-apiserver"), "--etcd-servers", f"http://{HOST}:{ports['etcd']}",
            "--bind-address", HOST, "--advertise-address", HOST, "--secure-port", str(ports["apiserver"]),
            "--tls-cert-file", str(pki.server_crt), "--tls-private-key-file", str(pki.server_key),
            "--client-ca-file", str(pki.ca_crt), "--authorization-mode", "Node,RBAC",
            "--service-account-issuer", server, "--service-account-key-file", str(pki.sa_pub),
            "--service-account-signing-key-file", str(pki.sa_key), "--service-cluster-ip-range", SERVICE_CIDR,
            "--cert-dir", str(state / "apiserver"), "--endpoint-reconciler-type", "none",
        ],
        "controller-manager": [
            str(b / "kube-controller-manager"), *common, "--secure-port", str(ports["controller-manager"]),
            "--service-account-private-key-file", str(pki.sa_key), "--root-ca-file", str(pki.ca_crt),
            "--cluster-signing-cert-file", str(pki.ca_crt), "--cluster-signing-key-file", str(pki.ca_key),
            "--service-cluster-ip-range", SERVICE_CIDR, "--cert-dir", str(state / "controller-manager"),
        ],
        "scheduler": [
            str(b / "kube-scheduler"), *common, "--secure-port", str(ports["scheduler"]),
            "--cert-dir", str(state / "scheduler"),
        ],
        "kwok": [
            str(b / "kwok"), "--kubeconfig", kc, "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
            "--node-lease-duration-seconds=40", "--config", str(state / "kwok-stages.yaml"),
            "--server-address", f"{HOST}:{ports['kwok']}",
        ],
    }  # fmt: skip


def _health(name: str, ports: dict[str, int], pki: PkiPaths) -> dict[str, str]:
    port = ports[name]
    if name == "etcd":
        return {"url": f"http://{HOST}:{port}/health"}
    if name == "apiserver":
        return {
            "url": f"https://{HOST}:{port}/readyz",
            "ca": str(pki.ca_crt),
            "cert": str(pki.admin_crt),
            "key": str(pki.admin_key),
        }
    if name == "kwok":
        return {"tcp": str(port)}
    return {"url": f"https://{HOST}:{port}/healthz"}


def _stages(tools: Path, state: Path) -> None:
    """kwok's shipped fast stages (nodes Ready, pods Running), as one config file of its own."""
    docs = [p.read_text() for p in sorted((tools / "share" / "kwok").glob("*.yaml"))]
    state.mkdir(parents=True, exist_ok=True)
    (state / "kwok-stages.yaml").write_text("\n---\n".join(docs))


def api_address(ctx: StackContext) -> tuple[str, str]:
    """The PKI folder and URL of a kube stack's API server."""
    local = ctx.settings.local
    pki = (ctx.root / local.state_dir).resolve() / "kube" / "pki"
    return str(pki), f"https://{HOST}:{local.base_port + PORTS.index('apiserver')}"


def build_kube_cluster(component: GpuClusterOutputs, name: str, args: GpuClusterArgs) -> None:
    """The kube children of a GpuCluster: PKI, the five processes, the pools' nodes, the provider."""
    ctx, local = args.context, args.context.settings.local
    tools, state = (ctx.root / TOOLS_DIR).resolve(), (ctx.root / local.state_dir).resolve() / "kube"
    ports = {p: local.base_port + i for i, p in enumerate(PORTS)}
    pki_dir = state / "pki"
    pki = PkiPaths(pki_dir)
    _stages(tools, state)
    opts = pulumi.ResourceOptions(parent=component)
    certs = KubePki(f"{name}-pki", str(pki_dir), ports["apiserver"], opts)
    argv = _argv(tools, state, ports, pki)
    started: list[pulumi.Resource] = [certs]
    processes: dict[str, KubeProcess] = {}
    for proc in ("etcd", "apiserver", "controller-manager", "scheduler", "kwok"):
        owns = [str(state / "etcd")] if proc == "etcd" else []
        own_ports = [ports[proc], ports["etcd-peer"]] if proc == "etcd" else [ports[proc]]
        props = {
            "name": proc, "argv": argv[proc], "ports": own_ports, "health": _health(proc, ports, pki),
            "log": str(state / "logs" / f"{proc}.log"), "cwd": str(state), "owns": owns,
        }  # fmt: skip
        # etcd and the API server first; the others need the API server. Each depends on the
        # one before it, so destroy stops them in reverse: the controller-manager outlives
        # every Kubernetes object (the foreground-deletion finalizer needs its garbage collector).
        processes[proc] = KubeProcess(
            f"{name}-{proc}", props, pulumi.ResourceOptions(parent=component, depends_on=started[-1:])
        )
        started.append(processes[proc])
    server = f"https://{HOST}:{ports['apiserver']}"
    nodes = [
        KwokNodes(
            f"{name}-{pool.name}-nodes",
            {"pool": pool.name, "pki": str(pki_dir), "server": server, "nodes": pool_nodes(pool)},
            pulumi.ResourceOptions(parent=component, depends_on=[processes["kwok"]]),
        )
        for pool in ctx.settings.cluster.gpu_pools
    ]
    kubeconfig = pulumi.Output.secret(certs.kubeconfig)
    provider = k8s.Provider(
        f"{name}-k8s",
        kubeconfig=kubeconfig,
        opts=pulumi.ResourceOptions(parent=component, depends_on=nodes or started[-1:]),
    )
    _serving_base(component, name, tools, provider, kubeconfig, ctx.tags())


def _serving_base(
    component: GpuClusterOutputs,
    name: str,
    tools: Path,
    provider: k8s.Provider,
    kubeconfig: pulumi.Output[str],
    tags: dict[str, str],
) -> None:
    """The serving namespace and the HTTPRoute CRD the EKS endpoint builders need, then the provider
    they use: one that waits for both, so no endpoint object races its namespace or CRD."""
    child = pulumi.ResourceOptions(parent=component, provider=provider)
    namespace = k8s.core.v1.Namespace(
        f"{name}-serving-ns",
        metadata={"name": SERVING_NAMESPACE, "labels": {**tags, "app.kubernetes.io/managed-by": "llmops"}},
        opts=child,
    )
    crd = k8s.yaml.v2.ConfigFile(f"{name}-httproute-crd", file=str(tools / HTTPROUTE_CRD), opts=child)
    component.kube_provider = k8s.Provider(
        f"{name}-k8s-serving",
        kubeconfig=kubeconfig,
        opts=pulumi.ResourceOptions(parent=component, depends_on=[namespace, crd]),
    )
    component.serving_namespace = namespace.metadata.name
