"""The kube target end to end: a real API server with kwok GPU nodes, the EKS builders applied
by the real pulumi-kubernetes provider, and a destroy that leaves nothing running.

Runs `pulumi up` of a throwaway copy of `stacks/Pulumi.kube.yaml` (its own ports and state
folder), then asks the API server itself where the pods landed and what it accepts.
Proves: every endpoint pod is Running on a node of the GPU pool its model is sized for (the
pools' labels and the Deployments' selectors agree), the API server stores the HPA and PDB
the EKS builders declare and refuses a malformed one with its own validation message, and
`destroy` stops every control-plane process and frees every port.
Cannot prove: anything about real kubelets, GPUs or container images (kwok runs no containers).
Needs `make kube-tools`; skipped, saying so, where the toolchain is not built.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from components.kube.cluster import PORTS
from components.kube.nodes import api_client
from components.local.process import port_open
from tests.support.project import REPO, Project, copy_project, free_port_base

pytestmark = [pytest.mark.kube, pytest.mark.engine]

TOOLS = REPO / ".kube-tools" / "bin"
NAMESPACE = "llmops"

if not (TOOLS / "kube-apiserver").is_file():
    pytest.skip("the kube toolchain is not built: run `make kube-tools`", allow_module_level=True)


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str, dict[str, Any]]]:
    project = copy_project(tmp_path_factory.mktemp("kube-stack") / "project")
    config = yaml.safe_load((REPO / "stacks" / "Pulumi.kube.yaml").read_text())["config"]
    config["llmops:local"] = {"basePort": free_port_base(len(PORTS)), "stateDir": ".state/kube-test"}
    project.write_stack("kube-test", config)
    project.pulumi("stack", "init", "kube-test", "--secrets-provider", "passphrase")
    try:
        project.pulumi("up", "--yes", "--skip-preview", stack="kube-test")
        yield project, "kube-test", config
    finally:
        project.pulumi("destroy", "--yes", stack="kube-test", check=False)


def _api(project: Project, config: dict[str, Any]) -> Any:
    base = int(config["llmops:local"]["basePort"])
    pki = project.root / config["llmops:local"]["stateDir"] / "kube" / "pki"
    return api_client(str(pki), f"https://127.0.0.1:{base + PORTS.index('apiserver')}")


def test_endpoint_pods_run_on_their_pool(kube: tuple[Project, str, dict[str, Any]]) -> None:
    project, _, config = kube
    with _api(project, config) as api:
        nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in api.get("/api/v1/nodes").json()["items"]}
        pods = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods").json()["items"]
    models = set(config["llmops:models"])
    by_model = {p["metadata"]["labels"]["app.kubernetes.io/name"]: p for p in pods}
    assert set(by_model) == models, f"pods: {sorted(by_model)}"
    for model, pod in by_model.items():
        assert pod["status"]["phase"] == "Running", (model, pod["status"])
        node = pod["spec"]["nodeName"]
        assert nodes[node]["llmops.io/pool"] == "a10g", f"{model} ran on {node} ({nodes[node]})"
        assert pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"
    # The other pool's node had room: the selector, not chance, put them on a10g.
    assert any(labels["llmops.io/pool"] == "l40s" for labels in nodes.values())


def test_api_server_keeps_the_hpa_and_pdb_and_refuses_a_malformed_one(
    kube: tuple[Project, str, dict[str, Any]],
) -> None:
    project, _, config = kube
    with _api(project, config) as api:
        hpas = api.get(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers").json()["items"]
        pdbs = api.get(f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets").json()["items"]
        assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {d["metadata"]["name"] for d in pdbs}
        assert len(hpas) == len(config["llmops:models"])
        bad_hpa = {**hpas[0], "metadata": {"name": "malformed", "namespace": NAMESPACE}}
        bad_hpa["spec"] = {**bad_hpa["spec"], "minReplicas": 3, "maxReplicas": 1}
        hpa = api.post(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers", json=bad_hpa)
        bad_pdb = {**pdbs[0], "metadata": {"name": "malformed", "namespace": NAMESPACE}}
        bad_pdb["spec"] = {**bad_pdb["spec"], "maxUnavailable": -1}
        pdb = api.post(f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets", json=bad_pdb)
    assert hpa.status_code == 422, hpa.text
    assert "must be greater than or equal to `minReplicas`" in hpa.json()["message"]
    assert pdb.status_code == 422, pdb.text
    assert "must be greater than or equal to 0" in pdb.json()["message"]


def test_destroy_leaves_no_process_or_port(kube: tuple[Project, str, dict[str, Any]]) -> None:
    project, stack, config = kube
    state = project.root / config["llmops:local"]["stateDir"] / "kube"
    base = int(config["llmops:local"]["basePort"])
    bins = {str(p) for p in TOOLS.iterdir()}
    started = [p for p in psutil.process_iter(["exe", "cmdline"]) if _ours(p, bins, state)]
    assert len(started) == 5, [p.info["cmdline"][:1] for p in started]
    project.pulumi("destroy", "--yes", stack=stack)
    assert not [p for p in psutil.process_iter(["exe", "cmdline"]) if _ours(p, bins, state)]
    assert not [base + i for i in range(len(PORTS)) if port_open(base + i)]
    assert not (state / "etcd").exists() and not (state / "pki").exists()


def _ours(proc: psutil.Process, bins: set[str], state: Path) -> bool:
    """A control-plane process of this stack: one of the built binaries, with this stack's state folder."""
    cmdline = proc.info.get("cmdline") or []
    return bool(cmdline) and cmdline[0] in bins and any(str(state) in arg for arg in cmdline)


def test_a_variant_no_node_can_hold_stays_pending_and_up_fails_naming_model_and_pools(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """One a10g node for two replicas of one GPU each: the scheduler leaves one Pending."""
    project = copy_project(tmp_path_factory.mktemp("kube-pending") / "project")
    config = yaml.safe_load((REPO / "stacks" / "Pulumi.kube.yaml").read_text())["config"]
    config["llmops:local"] = {"basePort": free_port_base(len(PORTS)), "stateDir": ".state/kube-pending"}
    a10g = next(p for p in config["llmops:cluster"]["gpuPools"] if p["name"] == "a10g")
    a10g["desiredSize"] = 1
    model = config["llmops:models"][0]
    project.edit_model(model, lambda m: m["deployments"]["dev"].update(min_replicas=2, max_replicas=2))
    project.write_stack("kube-pending", config)
    project.pulumi("stack", "init", "kube-pending", "--secrets-provider", "passphrase")
    try:
        result = project.pulumi("up", "--yes", "--skip-preview", stack="kube-pending", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert "stay Pending on the GPU pools" in output, output[-3000:]
        assert f"{model}: 1 pod(s) stay Pending" in output, output[-3000:]
        assert "a10g: 1 x g5.xlarge (1 GPU each)" in output and "l40s: 1 x g6e.xlarge" in output
        assert "Insufficient nvidia.com/gpu" in output  # the scheduler's own reason
    finally:
        project.pulumi("destroy", "--yes", stack="kube-pending")
