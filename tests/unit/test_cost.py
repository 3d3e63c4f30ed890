"""Stack cost: endpoints, training, GPU node pools and system nodes, per month.

Proves: each line is count x catalog hourly price x 730 with the count the
endpoints really run (SageMaker: min_replicas per variant; EKS: replicas split
by weight), EKS endpoint replicas are not counted again on their pool, a local
stack costs nothing, the shipped dev/staging/prod stacks fit their budgets, and
`llmops cost` prints per-stack JSON, costs another checkout with `--root`, and
leaves out (with a warning) registry files that have problems.
Cannot prove: what AWS will bill; prices are the catalog's recorded on-demand list
prices, and spot, savings plans and data transfer are not modelled.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmops.catalog import load_catalog
from llmops.cli import main
from llmops.cost import StackCost, endpoint_instances, stack_cost
from llmops.registry import ModelEntry, Variant, load_registry, validate
from llmops.settings import StackSettings, load_all_stacks
from tests.unit.conftest import REPO, entry

pytestmark = pytest.mark.unit

Write = Callable[[str, Any], Path]


def hourly(instance_type: str) -> float:
    return load_catalog().get(instance_type).hourly_usd


def cost_of(models_dir: Path, stacks: dict[str, StackSettings], stack: str) -> StackCost:
    registry, problems = validate(models_dir, stacks)
    assert problems == [], problems
    return stack_cost(stack, stacks[stack], registry, models_dir)


def lines(cost: StackCost, kind: str) -> dict[str, Any]:
    return {line.name: line for line in cost.lines if line.kind == kind}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "local"])
def test_shipped_stacks_fit_their_budgets(stack: str, stacks: dict[str, StackSettings]) -> None:
    registry = load_registry(REPO / "models", stacks)
    cost = stack_cost(stack, stacks[stack], registry, REPO / "models")
    assert not cost.over_budget, cost.to_dict()
    # Where the budget policy is mandatory, the maximum (autoscaled to every max_replicas) must fit too.
    config = json.loads((REPO / "policies" / "config" / f"{stacks[stack].environment}.json").read_text())
    if config.get("stack-budget", config["all"]) == "mandatory":
        assert not cost.max_over_budget, cost.to_dict()
    assert cost.max_total_monthly_usd >= cost.total_monthly_usd
    if stacks[stack].target == "local":
        assert cost.total_monthly_usd == 0 and cost.lines
    else:
        assert cost.total_monthly_usd > 0


SERVICE_PRICES = {  # line kind -> (its price in the catalog's services, per hour (h) or per month (m))
    "control-plane": ("eks_control_plane_hourly_usd", "h"),
    "nat-gateway": ("nat_gateway_hourly_usd", "h"),
    "ebs": ("ebs_gp3_gb_month_usd", "m"),
    "s3": ("s3_standard_gb_month_usd", "m"),
}


def test_every_line_is_count_times_hourly_times_730(stacks: dict[str, StackSettings]) -> None:
    registry = load_registry(REPO / "models", stacks)
    services = load_catalog().services
    for stack in ("dev", "staging", "prod"):
        for line in stack_cost(stack, stacks[stack], registry, REPO / "models").lines:
            if line.kind in ("endpoint", "node-pool", "system-nodes"):
                assert line.hourly_usd == hourly(line.instance_type)
            elif line.kind in SERVICE_PRICES and line.count:
                field, per = SERVICE_PRICES[line.kind]
                price = getattr(services, field)
                assert line.hourly_usd == pytest.approx(price if per == "h" else price / 730)
            if line.kind != "training":
                assert line.monthly_usd == pytest.approx(line.count * line.hourly_usd * 730, abs=0.01)
                assert line.max_monthly_usd == pytest.approx(line.max_count * line.hourly_usd * 730, abs=0.01)
                assert line.max_count >= line.count


def test_sagemaker_endpoint_counts_replicas_per_variant(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    variants = [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}]
    write("demo", entry(**{"deployments.dev": {"min_replicas": 2, "variants": variants}}))
    line = lines(cost_of(models_dir, stacks, "dev"), "endpoint")["demo"]
    assert line.count == 4  # SageMaker runs min_replicas instances for each production variant
    assert line.monthly_usd == pytest.approx(4 * hourly(line.instance_type) * 730, abs=0.01)


def test_eks_replicas_split_by_weight() -> None:
    variants = [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}, {"version": "v3", "weight": 0}]
    dep = ModelEntry.model_validate(entry(**{"serving.min_replicas": 4, "serving.max_replicas": 4})).deployment("dev")
    dep = replace(dep, variants=[Variant.model_validate(v) for v in variants])
    assert endpoint_instances(dep, "ec2") == 4 + 1  # round(3.6) for v1, at least one for the canary, none for v3
    assert endpoint_instances(dep, "sagemaker") == 4 * 3


def test_eks_endpoints_use_the_pools_desired_nodes_once(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    # dev's a10g-spot pool wants 1 node; an EKS endpoint replica on it must not be paid twice.
    write("demo", entry(**{"serving.platform": "eks", "deployments": {"dev": {}}}))
    cost = cost_of(models_dir, stacks, "dev")
    endpoint, pool = lines(cost, "endpoint")["demo"], lines(cost, "node-pool")["a10g-spot"]
    assert endpoint.instance_type in stacks["dev"].cluster.gpu_pools[0].instance_types
    assert (endpoint.count, pool.count, pool.monthly_usd) == (1, 0, 0)
    # A second replica goes beyond the pool's desired size: it is paid on the endpoint's line only.
    write("demo", entry(**{"serving.platform": "eks", "deployments": {"dev": {"min_replicas": 2}}}))
    cost = cost_of(models_dir, stacks, "dev")
    assert (lines(cost, "endpoint")["demo"].count, lines(cost, "node-pool")["a10g-spot"].count) == (2, 0)


def _always(stacks: dict[str, StackSettings], stack: str) -> dict[str, StackSettings]:
    """The stacks, with `stack` keeping its cluster although no model uses it."""
    settings = stacks[stack]
    cluster = settings.cluster.model_copy(update={"create": "always"})
    return {**stacks, stack: settings.model_copy(update={"cluster": cluster})}


def test_idle_pools_and_system_nodes(models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    cost = cost_of(models_dir, _always(stacks, "prod"), "prod")  # no models: only the cluster asked for
    pools = lines(cost, "node-pool")
    assert pools["a10g"].count == 2 and pools["a10g"].instance_type == "g5.2xlarge"
    assert pools["a10g"].max_count == 8 and pools["l40s"].max_count == 2
    assert pools["l40s"].count == 0
    system = lines(cost, "system-nodes")["system"]
    assert (system.count, system.instance_type, system.max_count) == (3, "m6i.xlarge", 4)
    services = load_catalog().services
    # The control plane, and NAT in each of prod's three zones for the nodes' egress.
    assert lines(cost, "control-plane")["eks"].monthly_usd == pytest.approx(services.eks_control_plane_hourly_usd * 730)
    assert lines(cost, "nat-gateway")["nat"].count == 3
    ebs = lines(cost, "ebs")["node root volumes"]
    assert (ebs.count, ebs.max_count) == (3 * 50 + 2 * 200, 4 * 50 + (8 + 2) * 200)
    assert cost.total_monthly_usd == pytest.approx(
        (2 * hourly("g5.2xlarge") + 3 * hourly("m6i.xlarge")) * 730
        + 730 * (services.eks_control_plane_hourly_usd + 3 * services.nat_gateway_hourly_usd)
        + 550 * services.ebs_gp3_gb_month_usd
        + services.cloudwatch_dashboard_month_usd,
        abs=0.05,
    )


def test_an_unused_cluster_costs_nothing_and_says_so(models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    cost = cost_of(models_dir, stacks, "prod")  # no models: nothing needs a cluster or NAT
    assert not lines(cost, "node-pool") and not lines(cost, "system-nodes") and not lines(cost, "nat-gateway")
    (plane,) = lines(cost, "control-plane").values()
    assert plane.name == "eks (none: no model on EKS)" and plane.monthly_usd == 0


def test_cheapest_pool_type_prices_the_pool(models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    dev = stacks["dev"]
    cost = cost_of(models_dir, _always(stacks, "dev"), "dev")
    pool = lines(cost, "node-pool")["a10g-spot"]
    assert pool.instance_type == min(dev.cluster.gpu_pools[0].instance_types, key=hourly)


def test_training_budget_is_its_monthly_line(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    training = {
        "base_model": "scratch",
        "dataset": {"uri": "s3://b/d", "version": "1"},
        "max_runtime": 3600,
        "monthly_budget_usd": 321.5,
    }
    write("demo", entry(training=training))
    line = lines(cost_of(models_dir, stacks, "dev"), "training")["demo"]
    assert (line.monthly_usd, line.instance_type) == (321.5, "ml.g5.2xlarge")


def test_local_stack_costs_nothing(stacks: dict[str, StackSettings]) -> None:
    registry = load_registry(REPO / "models", stacks)
    cost = stack_cost("local", stacks["local"], registry, REPO / "models")
    assert {line.instance_type for line in cost.lines} == {"local"}
    assert cost.total_monthly_usd == 0


def test_over_budget_is_flagged(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    write("demo", entry(**{"deployments": {"dev": {"min_replicas": 2, "instance": "ml.g5.48xlarge"}}}))
    cost = cost_of(models_dir, stacks, "dev")
    assert cost.total_monthly_usd > stacks["dev"].budget_monthly_usd and cost.over_budget
    assert cost.top(1)[0].name == "demo"


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of this checkout's registry and stacks."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "models", root / "models")
    shutil.copytree(REPO / "stacks", root / "stacks")
    (root / "Pulumi.yaml").write_text("name: llmops\n")
    return root


def test_cli_json_covers_every_stack(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(REPO))
    assert main(["cost", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"dev", "staging", "prod", "local", "kube"}
    for stack in out.values():
        assert stack["total_monthly_usd"] == pytest.approx(
            sum(line["monthly_usd"] for line in stack["lines"]), abs=0.05
        )


def test_cli_root_costs_another_checkout(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--stack", "prod", "--json", "--root", str(checkout)]) == 0
    before = json.loads(capsys.readouterr().out)["prod"]["total_monthly_usd"]
    path = checkout / "models" / "llama-3-1-8b-instruct.yaml"
    path.write_text(path.read_text().replace("    min_replicas: 2\n", "    min_replicas: 3\n"))
    assert main(["cost", "--stack", "prod", "--json", "--root", str(checkout)]) == 0
    after = json.loads(capsys.readouterr().out)["prod"]["total_monthly_usd"]
    # One more replica of prod's 8B endpoint (one variant), at the price of the type prod sizes it to.
    stacks = load_all_stacks(checkout / "stacks")
    registry = load_registry(checkout / "models", stacks)
    line = lines(stack_cost("prod", stacks["prod"], registry, checkout / "models"), "endpoint")["llama-3-1-8b-instruct"]
    assert line.count == 3
    assert after - before == pytest.approx(hourly(line.instance_type) * 730, abs=0.02)


def test_cli_leaves_out_broken_files_with_a_warning(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "models" / "qwen2-5-7b-instruct.yaml").write_text("not: [valid")
    assert main(["cost", "--stack", "dev", "--root", str(checkout)]) == 0
    captured = capsys.readouterr()
    assert "qwen2-5-7b-instruct" not in captured.out and "llama-3-1-8b-instruct" in captured.out
    assert "models/qwen2-5-7b-instruct.yaml has problems" in captured.err


def test_cli_unknown_stack_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(REPO))
    assert main(["cost", "--stack", "nope"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no stack 'nope'" in err


def test_prod_json_from_the_installed_command_counts_everything() -> None:
    """`llmops cost --stack prod --json` as a user runs it: the control plane (none: every prod model is on
    SageMaker), NAT for the Hub downloads, and the maximum with every endpoint at max_replicas."""
    import subprocess

    env = {"HOME": str(Path.home()), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "LLMOPS_ROOT": str(REPO)}
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "llmops"), "cost", "--stack", "prod", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    prod = json.loads(done.stdout)["prod"]
    kinds = {line["kind"]: line for line in prod["lines"]}
    assert kinds["control-plane"]["count"] == 0 and "no model on EKS" in kinds["control-plane"]["name"]
    assert kinds["nat-gateway"]["count"] == 3 and kinds["nat-gateway"]["monthly_usd"] > 0
    assert "node-pool" not in kinds and "system-nodes" not in kinds
    assert prod["prices_recorded"] == load_catalog().recorded
    endpoints = [line for line in prod["lines"] if line["kind"] == "endpoint"]
    assert prod["max_total_monthly_usd"] == pytest.approx(
        sum(line["max_monthly_usd"] for line in prod["lines"]), abs=0.05
    )
    assert prod["max_total_monthly_usd"] > prod["total_monthly_usd"]
    assert all(line["max_count"] > line["count"] for line in endpoints)
    assert not prod["max_over_budget"]
