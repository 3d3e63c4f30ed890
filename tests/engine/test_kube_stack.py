"""The kube target end to end: a real API server with kwok GPU nodes, the EKS builders applied
by the real pulumi-kubernetes provider, and a destroy that leaves nothing running.

Runs `pulumi up` of a throwaway copy of `stacks/Pulumi.kube.yaml` (its own ports and state
folder), then asks the API server itself where the pods landed and what it accepts.
Proves: every endpoint pod is Running on a node of the GPU pool its model is sized for (the
pools' labels and the Deployments' selectors agree), the API server stores the HPA and PDB
the EKS builders declare and refuses a malformed one with its own validation message, it
stores the EKS Prometheus stack's PrometheusRules and ServiceMonitors on the prometheus-operator
CRDs and refuses a rule the operator's schema refuses, the EKS training Job's pod lands on
its pool, a 90/10 split of two versions with one replica each serves 90/10 (the experiment's
sample-ratio test finds no mismatch), the `curl` line `llmops outputs` prints gets a
completion (from the stand-in tiny model's local replicas), replicas follow the Deployment's
Ready pods when it is scaled out and in,
`refresh` + `up` heal a killed scheduler and a killed pod follower, and `destroy` stops
every control-plane process, front and replica and frees every port.
Cannot prove: anything about real kubelets, GPUs or container images (kwok runs no
containers), nor the registry model's own answers (its weights are not served here).
Needs `make kube-tools`; skipped, saying so, where the toolchain is not built.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from components.kube.cluster import PORTS
from components.kube.nodes import api_client
from components.local.process import port_open
from llmops.experiments.data import VariantData
from llmops.experiments.stats import sample_ratio
from llmops.local.store import STORE_DIR
from tests.support.project import REPO, Project, copy_project, free_port_base

pytestmark = [pytest.mark.kube, pytest.mark.engine]

TOOLS = REPO / ".kube-tools" / "bin"
NAMESPACE = "llmops"
MONITORING = "monitoring"
TRAINING_POOL = "l40s"
SPLIT = {"v1": 90, "v2": 10}  # the committed traffic split of the module's model
REQUESTS = 400  # expected 40 on the 10% variant: well over the sample-ratio test's minimum

if not (TOOLS / "kube-apiserver").is_file():
    pytest.skip("the kube toolchain is not built: run `make kube-tools`", allow_module_level=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact store for the module's stacks: the stand-in weights are trained once."""
    return tmp_path_factory.mktemp("kube-artifacts")


def _kube_project(folder: Path, artifacts: Path) -> Project:
    project = copy_project(folder / "project")
    (project.root / ".state").mkdir(exist_ok=True)
    (project.root / STORE_DIR).symlink_to(artifacts)
    return project


def _with_split_training_and_room(model: dict[str, Any]) -> None:
    # A 90/10 split of two versions, one replica each (variant_replicas never gives a live variant 0).
    v1 = model["versions"]["v1"]["huggingface"]
    model["versions"]["v2"] = {"huggingface": {**v1, "revision": "0" * 40}}
    model["serving"]["variants"] = [{"version": "v1", "weight": SPLIT["v1"]}, {"version": "v2", "weight": SPLIT["v2"]}]
    # Room for a second replica: the scale-out test adds a pod within the HPA's bounds.
    model["serving"]["max_replicas"] = 2
    # An EKS training Job on an L40S instance, which only the other pool offers (so it takes no
    # GPU the endpoint's replicas need).
    model["training"] = {
        "base_model": "Qwen/Qwen2.5-7B-Instruct",
        "platform": "eks",
        "dataset": {"name": "tiny-chat-corpus", "version": "2"},
        "hyperparameters": {"method": "lora", "lora_r": 16, "epochs": 1},
        "instance": "g6e.xlarge",
        "max_runtime": 3600,
        "monthly_budget_usd": 100,
    }


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[tuple[Project, str, dict[str, Any]]]:
    project = _kube_project(tmp_path_factory.mktemp("kube-stack"), artifacts)
    config = yaml.safe_load((REPO / "stacks" / "Pulumi.kube.yaml").read_text())["config"]
    ports = {"basePort": free_port_base(len(PORTS) + 40), "stateDir": ".state/kube-test"}
    config["llmops:local"] = {**config["llmops:local"], **ports}
    # One GPU node per serving pod (v1, v2) and one for the scale-out test's extra v1 pod.
    a10g = next(p for p in config["llmops:cluster"]["gpuPools"] if p["name"] == "a10g")
    a10g["desiredSize"] = a10g["maxSize"] = 3
    project.edit_model(config["llmops:models"][0], _with_split_training_and_room)
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
    pods = [p for p in pods if "batch.kubernetes.io/job-name" not in p["metadata"]["labels"]]  # serving pods
    model = config["llmops:models"][0]
    # One pod per variant: the 10% variant is not rounded away.
    by_version = {p["metadata"]["labels"]["llmops.io/version"]: p for p in pods}
    assert sorted(by_version) == sorted(SPLIT), f"pods: {sorted(by_version)}"
    for version, pod in by_version.items():
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == model
        assert pod["status"]["phase"] == "Running", (version, pod["status"])
        node = pod["spec"]["nodeName"]
        assert nodes[node]["llmops.io/pool"] == "a10g", f"{model} {version} ran on {node} ({nodes[node]})"
        assert pod["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"
    # The other pool's node had room: the selector, not chance, put them on a10g.
    assert any(labels["llmops.io/pool"] == "l40s" for labels in nodes.values())


def test_the_training_job_is_the_eks_one_and_its_pod_runs_on_the_training_pool(
    kube: tuple[Project, str, dict[str, Any]],
) -> None:
    project, _, config = kube
    model = config["llmops:models"][0]
    with _api(project, config) as api:
        nodes = {n["metadata"]["name"]: n["metadata"]["labels"] for n in api.get("/api/v1/nodes").json()["items"]}
        jobs = api.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs").json()["items"]
        assert [j["metadata"]["labels"]["app.kubernetes.io/name"] for j in jobs] == [f"{model}-training"]
        spec = jobs[0]["spec"]["template"]["spec"]
        assert spec["nodeSelector"]["llmops.io/pool"] == TRAINING_POOL, spec["nodeSelector"]
        assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["serviceAccountName"] and spec["volumes"][0]["configMap"]["name"]

        def job_pod() -> dict[str, Any] | None:
            selector = f"batch.kubernetes.io/job-name={jobs[0]['metadata']['name']}"
            pods = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": selector}).json()
            return next((p for p in pods["items"] if p["spec"].get("nodeName")), None)

        pod = _until(job_pod, "the training Job's pod is scheduled", timeout=120)
    assert nodes[pod["spec"]["nodeName"]]["llmops.io/pool"] == TRAINING_POOL, pod["spec"]["nodeName"]


def test_api_server_keeps_the_hpa_and_pdb_and_refuses_a_malformed_one(
    kube: tuple[Project, str, dict[str, Any]],
) -> None:
    project, _, config = kube
    with _api(project, config) as api:
        hpas = api.get(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers").json()["items"]
        pdbs = api.get(f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets").json()["items"]
        assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {d["metadata"]["name"] for d in pdbs}
        assert len(hpas) == len(SPLIT)  # one per variant's Deployment
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


def test_the_slo_rules_and_monitors_are_stored_and_a_malformed_rule_is_refused(
    kube: tuple[Project, str, dict[str, Any]],
) -> None:
    """The EKS Prometheus stack's PrometheusRules and ServiceMonitors, on the operator's own CRDs."""
    project, _, config = kube
    rules_path = f"/apis/monitoring.coreos.com/v1/namespaces/{MONITORING}/prometheusrules"
    with _api(project, config) as api:
        rules = {r["metadata"]["name"]: r for r in api.get(rules_path).json()["items"]}
        monitors = api.get(f"/apis/monitoring.coreos.com/v1/namespaces/{MONITORING}/servicemonitors").json()["items"]
        assert {f"llmops-slo-{m}" for m in config["llmops:models"]} == set(rules), sorted(rules)
        assert {m["metadata"]["name"] for m in monitors} == {"llmops-serving", "dcgm-exporter"}
        rule = next(iter(rules.values()))
        alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
        assert alerts and all(r["expr"] and r["labels"]["model"] for r in alerts), alerts
        # What the operator's schema refuses, the API server refuses: a duration Prometheus cannot parse.
        bad = {**rule, "metadata": {"name": "malformed", "namespace": MONITORING}}
        bad["spec"] = {"groups": [{"name": "g", "rules": [{**alerts[0], "for": "five minutes"}]}]}
        refused = api.post(rules_path, json=bad)
    assert refused.status_code == 422, refused.text
    assert "spec.groups[0].rules[0].for" in refused.json()["message"], refused.json()["message"]


def _llmops_outputs(project: Project, stack: str) -> subprocess.CompletedProcess[str]:
    """`llmops outputs` as a user runs it: the installed script, a bare environment, in the checkout."""
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}
    env["PULUMI_CONFIG_PASSPHRASE"] = project.env["PULUMI_CONFIG_PASSPHRASE"]
    script = str(project.root / ".venv" / "bin" / "llmops")
    return subprocess.run(
        [script, "outputs", "--stack", stack], cwd=project.root, env=env, capture_output=True, text=True, timeout=300
    )


def _served(project: Project, config: dict[str, Any]) -> list[str]:
    """The replica addresses the model's front routes to now (its routing table)."""
    model = config["llmops:models"][0]
    routes = project.root / config["llmops:local"]["stateDir"] / "kube" / "serving" / model / "routes.json"
    return [u["address"] for v in json.loads(routes.read_text())["variants"] for u in v["upstreams"]]


def _served_by(project: Project, config: dict[str, Any], count: int) -> list[str] | None:
    served = _served(project, config)
    return served if len(served) == count else None


def _until(check: Callable[[], Any], what: str, timeout: float = 600) -> Any:
    """Wait for `check()` to be truthy; a generous bound only so a broken stack cannot hang the suite."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(1)
    return value


def _completion(url: str, model: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": "Hello", "max_tokens": 4}, timeout=120)


def test_the_url_llmops_outputs_prints_answers_with_the_stand_in(kube: tuple[Project, str, dict[str, Any]]) -> None:
    project, stack, config = kube
    model = config["llmops:models"][0]
    shown = _llmops_outputs(project, stack)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr[-3000:]
    outputs = json.loads(shown.stdout[: shown.stdout.index("\n}\n") + 2])["endpoints"][model]
    assert outputs["standIn"] == "tiny-chat"
    assert outputs["serviceUrl"] == f"http://{model}.{NAMESPACE}.svc.cluster.local/v1"  # the real Service's
    assert f"stand-in weights of tiny-chat, not {model}'s" in shown.stdout
    curl = next(line.strip() for line in shown.stdout.splitlines() if line.strip().startswith("curl "))
    assert curl.startswith(f"curl -s {outputs['url']}/v1/chat/completions"), curl
    # The exact line, as a user pastes it into a shell.
    answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr
    body = json.loads(answer.stdout)
    assert body["model"] == model, body
    assert body["choices"][0]["message"]["content"].strip(), body


def test_a_90_10_split_with_one_replica_each_serves_90_10(kube: tuple[Project, str, dict[str, Any]]) -> None:
    """The committed weights split the traffic, not the replica counts: the experiment's own
    sample-ratio test (chi-square) finds no mismatch in what the front served."""
    project, stack, config = kube
    model = config["llmops:models"][0]
    url = json.loads(project.pulumi("stack", "output", "--json", stack=stack).stdout)["endpoints"][model]["url"]
    served: Counter[str] = Counter()
    with httpx.Client(timeout=120) as client:
        for i in range(REQUESTS):
            body = {"model": model, "prompt": "Hello", "max_tokens": 1, "user": f"user-{i}"}
            response = client.post(f"{url}/v1/completions", json=body)
            assert response.status_code == 200, response.text
            served[response.headers["x-llmops-version"]] += 1
    assert set(served) == set(SPLIT), served
    srm = sample_ratio([VariantData(v, w, requests=served[v]) for v, w in SPLIT.items()])
    assert srm.p_value is not None and not srm.mismatch, srm.reason
    print(f"served {dict(served)}: {srm.reason}")  # shown with -s: the figure the README quotes
    # With one replica each, a replica-count split would serve about half to v2.
    assert served["v2"] < REQUESTS / 4, served


def test_replicas_follow_the_ready_pods(kube: tuple[Project, str, dict[str, Any]]) -> None:
    """Scaling the Deployment on the API server adds a replica, and scaling it back stops one."""
    project, _, config = kube
    model = config["llmops:models"][0]
    assert len(_served(project, config)) == len(SPLIT)  # a replica per variant's pod
    with _api(project, config) as api:
        deployments = api.get(
            f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
            params={"labelSelector": f"app.kubernetes.io/name={model},llmops.io/version=v1"},
        ).json()["items"]
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployments[0]['metadata']['name']}"

        def scale(replicas: int) -> None:
            patch = json.dumps({"spec": {"replicas": replicas}})
            response = api.patch(path, content=patch, headers={"Content-Type": "application/merge-patch+json"})
            assert response.status_code == 200, response.text

        scale(2)
        more = _until(lambda: _served_by(project, config, 3), "a replica per Ready pod (2 of v1, 1 of v2)")
        for address in more:
            assert _completion(f"http://{address}", model).status_code == 200, address
        scale(1)
        back = _until(lambda: _served_by(project, config, 2), "back to one replica of v1")
    [gone] = set(more) - set(back)
    _until(lambda: not port_open(int(gone.rsplit(":", 1)[1])), f"the retired replica's port {gone} closes")


def test_refresh_and_up_heal_a_killed_control_plane_process_and_pod_follower(
    kube: tuple[Project, str, dict[str, Any]],
) -> None:
    project, stack, config = kube
    model = config["llmops:models"][0]
    state = project.root / config["llmops:local"]["stateDir"] / "kube"
    port = int(config["llmops:local"]["basePort"]) + PORTS.index("scheduler")
    url = json.loads(project.pulumi("stack", "output", "--json", stack=stack).stdout)["endpoints"][model]["url"]
    bins = {str(p) for p in TOOLS.iterdir()}
    [scheduler] = [p for p in _processes() if _ours(p, bins, state) and p.info["cmdline"][0].endswith("kube-scheduler")]
    [follower] = [p for p in _processes() if _follower(p, state)]
    for proc in (scheduler, follower):
        proc.kill()
        proc.wait(30)
    _until(lambda: not port_open(port), "the killed scheduler's port closes")
    project.pulumi("refresh", "--yes", stack=stack)
    project.pulumi("up", "--yes", "--skip-preview", stack=stack)
    [healed] = [p for p in _processes() if _ours(p, bins, state) and p.info["cmdline"][0].endswith("kube-scheduler")]
    assert healed.pid != scheduler.pid and port_open(port)
    assert [p.pid for p in _processes() if _follower(p, state)] != [follower.pid]
    # The same URL answers again, from a replica of the pod the healed follower found.
    assert _completion(url, model).status_code == 200


def _processes() -> list[psutil.Process]:
    return list(psutil.process_iter(["exe", "cmdline"]))


def _follower(proc: psutil.Process, state: Path) -> bool:
    cmdline = proc.info.get("cmdline") or []
    return "llmops.kube.pod_replicas" in cmdline and any(str(state) in arg for arg in cmdline)


def test_destroy_leaves_no_process_or_port(kube: tuple[Project, str, dict[str, Any]]) -> None:
    project, stack, config = kube
    state = project.root / config["llmops:local"]["stateDir"] / "kube"
    base = int(config["llmops:local"]["basePort"])
    bins = {str(p) for p in TOOLS.iterdir()}
    started = [p for p in psutil.process_iter(["exe", "cmdline"]) if _ours(p, bins, state)]
    assert len(started) == 5, [p.info["cmdline"][:1] for p in started]
    # The pod follower of each endpoint, with its front and replicas.
    serving = [q for p in _processes() if _follower(p, state) for q in [p, *p.children(recursive=True)]]
    assert len(serving) >= 3, serving
    project.pulumi("destroy", "--yes", stack=stack)
    assert not [p for p in psutil.process_iter(["exe", "cmdline"]) if _ours(p, bins, state)]
    assert not [p.pid for p in serving if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    # The control plane's ports and the endpoints' (fronts and replicas, after them).
    assert not [base + i for i in range(len(PORTS) + 40) if port_open(base + i)]
    assert not (state / "etcd").exists() and not (state / "pki").exists()


def _ours(proc: psutil.Process, bins: set[str], state: Path) -> bool:
    """A control-plane process of this stack: one of the built binaries, with this stack's state folder."""
    cmdline = proc.info.get("cmdline") or []
    return bool(cmdline) and cmdline[0] in bins and any(str(state) in arg for arg in cmdline)


def test_a_variant_no_node_can_hold_stays_pending_and_up_fails_naming_model_and_pools(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> None:
    """One a10g node for two replicas of one GPU each: the scheduler leaves one Pending."""
    project = _kube_project(tmp_path_factory.mktemp("kube-pending"), artifacts)
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
