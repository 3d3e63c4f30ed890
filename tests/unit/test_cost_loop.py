"""The cost loop's core: scale-to-zero rules, measured cost, the right-sizing rule, CloudWatch usage.

Proves: `serving.scale_to_zero` is a located registry error where the stack does not allow it
(production unless opted in), on EKS, and on a SageMaker split (one inference component serves
one version); a stack's default idle time applies where allowed and supported, never in prod;
measured $/1M tokens is replica hours x price / tokens and None (never 0) without tokens or
replica time; the right-sizing rule gives fewer replicas under light load, more beyond capacity
at the SLO, nothing on thin data, keeps production's floor of 2, proposes scale to zero for an
idle non-production endpoint; the registry edit keeps comments; the front's busy clock counts
overlapping requests once; CloudWatch usage asks SageMaker's series and LLMOps/Usage tokens
(Stubber validates each request and answer against botocore's model) and reports missing tokens
as unmeasured.
Cannot prove: that a live endpoint publishes those series (the engine test reads a real
Prometheus; AWS is AWS-side).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from llmops.local.serving.routing import Router, RoutingTable
from llmops.promote import set_override
from llmops.registry import ModelEntry
from llmops.settings import RightsizeSettings, ScaleToZeroSettings, StackSettings
from llmops.usage import cloudwatch
from llmops.usage.data import VersionUsage, parse_duration, percentile
from llmops.usage.measured import MeasuredCost, Price
from llmops.usage.rightsize import propose
from tests.unit.conftest import entry
from tests.unit.test_registry import Write, line_of, only, problems_of

pytestmark = pytest.mark.unit

LOCAL = StackSettings(target="local", environment="local")
PRICE = Price("ml.g5.xlarge", 1.5, "sagemaker")


def usage(concurrency: list[float], **kw: Any) -> VersionUsage:
    base: dict[str, Any] = {
        "model": "demo",
        "version": "v1",
        "window_seconds": 3600.0,
        "source": "test",
        "requests": 1000.0,
        "prompt_tokens": 20_000.0,
        "completion_tokens": 30_000.0,
        "replica_seconds": 3 * 3600.0,
        "busy_seconds": 1800.0,
        "served_minutes": len(concurrency),
        "concurrency": concurrency,
        "p95_latency_s": 0.5,
    }
    return VersionUsage(**{**base, **kw})


def deployment(env: str = "dev", **changes: Any) -> Any:
    return ModelEntry.model_validate(entry(**changes)).deployment(env)


# --------------------------------------------------------------------------- registry


def test_scale_to_zero_in_production_is_a_located_error(write: Write, models_dir: Path, stacks: Any) -> None:
    local = {"local": LOCAL, "prod-local": StackSettings(target="local", environment="prod", production=True)}
    path = write(
        "demo",
        entry(**{"deployments": {"local": {}, "prod": {"min_replicas": 2, "scale_to_zero": {"idle_seconds": 600}}}}),
    )
    problem = only(problems_of(models_dir, local))
    assert problem.path == "deployments.prod.scale_to_zero" and problem.line == line_of(path, "scale_to_zero:")
    assert "not allowed in 'prod' (a production environment)" in problem.message and "allowed: true" in problem.message

    opted = StackSettings(
        target="local", environment="prod", production=True, scale_to_zero=ScaleToZeroSettings(allowed=True)
    )
    assert problems_of(models_dir, {"local": LOCAL, "prod-local": opted}) == []


def test_scale_to_zero_is_allowed_on_local_and_one_version_sagemaker_and_refused_on_eks(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("demo", entry(**{"serving.scale_to_zero": {"idle_seconds": 900}, "deployments": {"local": {}}}))
    assert problems_of(models_dir, {"local": LOCAL}) == []
    write("demo", entry(**{"deployments": {"dev": {"scale_to_zero": {"idle_seconds": 900}}}}))
    assert problems_of(models_dir, stacks) == []  # dev serves on SageMaker: an inference component
    split = [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}]
    write(
        "demo",
        entry(
            **{
                "deployments": {"dev": {"variants": split, "scale_to_zero": {"idle_seconds": 900}}},
            }
        ),
    )
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "deployments.dev.scale_to_zero" and "one inference component" in problem.message
    write("demo", entry(**{"deployments": {"dev": {"platform": "eks", "scale_to_zero": {"idle_seconds": 900}}}}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "deployments.dev.scale_to_zero" and "EKS endpoints do not scale to zero" in problem.message


# --------------------------------------------------------------------------- measured cost


def test_dollars_per_million_tokens_is_replica_hours_times_price_over_tokens() -> None:
    cost = MeasuredCost(usage([1.0] * 60), PRICE, estimate_replicas=3)
    assert cost.window_usd == pytest.approx(3 * 1.5)
    assert cost.usd_per_million_tokens == pytest.approx(4.5 / 50_000 * 1e6)
    assert cost.usage.utilisation == pytest.approx(1800 / 10800)
    assert cost.monthly_usd == pytest.approx(4.5 * 730)
    assert cost.estimate_monthly_usd == pytest.approx(3 * 1.5 * 730)


def test_unmeasured_tokens_or_replica_time_are_none_never_zero() -> None:
    none = MeasuredCost(usage([1.0], prompt_tokens=None, completion_tokens=None), PRICE, 1)
    assert none.usd_per_million_tokens is None and "tokens not measured" in " ".join(none.notes)
    idle = MeasuredCost(usage([0.0], prompt_tokens=0.0, completion_tokens=0.0), PRICE, 1)
    assert idle.usd_per_million_tokens is None and "no tokens served" in " ".join(idle.notes)
    blind = MeasuredCost(usage([], replica_seconds=None, busy_seconds=None, served_minutes=0), PRICE, 1)
    assert blind.window_usd is None and blind.to_dict()["usd_per_million_tokens"] is None
    assert blind.usage.utilisation is None and blind.usage.mean_replicas is None


def test_durations_and_percentiles() -> None:
    assert [parse_duration(t) for t in ("10m", "2h", "7d", "90s", "1w")] == [600, 7200, 604800, 90, 604800]
    for bad in ("5", "ten minutes", "-1h", "30s"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    assert percentile([], 0.95) is None
    assert percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)


# --------------------------------------------------------------------------- the right-sizing rule


def test_light_load_on_three_replicas_is_proposed_one() -> None:
    dep = deployment("dev", **{"deployments.dev": {"min_replicas": 3, "max_replicas": 3}})
    light = usage([0.5] * 90 + [2.0] * 10)  # p95 ≈ 2 requests in flight, concurrency 4 per replica
    p = propose(dep, LOCAL, [light], PRICE, None, window="7d", min_minutes=60)
    assert p.changed and p.proposed == {"min_replicas": 1, "max_replicas": 1}
    assert p.evidence is not None and p.evidence.capacity == 4 and p.evidence.p95_concurrency == pytest.approx(2.0)
    assert p.monthly_saving_usd == pytest.approx(2 * 1.5 * 730)
    message = p.message()
    assert message.startswith("perf(models): right-size demo in dev: min_replicas 3 -> 1, max_replicas 3 -> 1")
    assert "p95 2.00" in message and "Monthly saving: $2,190.00" in message and "headroom 30%" in message


def test_load_beyond_capacity_at_the_slo_is_proposed_more() -> None:
    dep = deployment("dev")  # 1..2 replicas, concurrency 4, SLO p95 2 s
    hot = usage([6.0] * 100, replica_seconds=3600.0, p95_latency_s=4.0, shed=50.0)
    p = propose(dep, LOCAL, [hot], PRICE, None, window="7d", min_minutes=60)
    # One replica carried 6 in flight at twice the SLO: 3 per replica within it; 6 x 1.3 / 3 -> 3.
    assert p.evidence is not None and p.evidence.capacity == pytest.approx(3.0)
    assert p.proposed == {"min_replicas": 3, "max_replicas": 3} and p.monthly_saving_usd < 0


def test_thin_data_gives_no_proposal_and_says_why() -> None:
    dep = deployment("dev", **{"deployments.dev": {"min_replicas": 3, "max_replicas": 3}})
    p = propose(dep, LOCAL, [usage([0.1] * 30)], PRICE, None, window="7d", min_minutes=60)
    assert not p.changed and p.reasons == [
        "no proposal: 30 measured minutes, fewer than the minimum of 60 (--min-minutes)"
    ]
    blind = propose(dep, LOCAL, [usage([], replica_seconds=None)], PRICE, None, window="7d", min_minutes=1)
    assert not blind.changed and "no replica time recorded for v1" in blind.reasons[0]


def test_production_keeps_two_replicas_unless_its_stack_allows_fewer() -> None:
    dep = deployment("prod", **{"deployments.prod": {"min_replicas": 4, "max_replicas": 4}})
    prod = StackSettings(target="local", environment="prod", production=True)
    p = propose(dep, prod, [usage([0.1] * 100)], PRICE, None, window="7d", min_minutes=60)
    assert p.proposed == {"min_replicas": 2, "max_replicas": 2}
    allowed = prod.model_copy(update={"rightsize": RightsizeSettings(min_replicas=1)})
    assert (
        propose(dep, allowed, [usage([0.1] * 100)], PRICE, None, window="7d", min_minutes=60).proposed["min_replicas"]
        == 1
    )


def test_an_idle_endpoint_outside_production_is_proposed_scale_to_zero() -> None:
    dep = deployment("dev")
    idle = usage([0.0] * 100, requests=0.0, prompt_tokens=0.0, completion_tokens=0.0)
    p = propose(dep, LOCAL, [idle], PRICE, None, window="7d", min_minutes=60)
    assert p.proposed == {
        "max_replicas": 1,
        "scale_to_zero": {"idle_seconds": 900},
    } and p.monthly_saving_usd == pytest.approx(1.5 * 730)
    prod = StackSettings(target="local", environment="prod", production=True)
    assert (
        "scale_to_zero"
        not in propose(deployment("prod"), prod, [idle], PRICE, None, window="7d", min_minutes=60).proposed
    )
    aws = StackSettings(target="aws", environment="dev")  # SageMaker: proposed; EKS: never
    assert "scale_to_zero" in propose(dep, aws, [idle], PRICE, None, window="7d", min_minutes=60).proposed
    eks = deployment("dev", **{"serving.platform": "eks"})
    assert "scale_to_zero" not in propose(eks, aws, [idle], PRICE, None, window="7d", min_minutes=60).proposed


def test_a_stack_default_scales_to_zero_where_allowed_and_supported(write: Write, models_dir: Path) -> None:
    from llmops.registry import load_registry
    from llmops.sizing import stack_deployments

    split = [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}]
    for name, changes in {
        "one": {},
        "own": {"serving.scale_to_zero": {"idle_seconds": 60}},
        "split": {"serving.variants": split},
        "eks": {"serving.platform": "eks"},
    }.items():
        deployments = {"dev": {}} if name == "own" else {"dev": {}, "prod": {"min_replicas": 2}}
        write(name, entry(**{"name": name, **changes, "deployments": deployments}))
    default = ScaleToZeroSettings(default_idle_seconds=1800)
    dev = StackSettings(target="aws", environment="dev", scale_to_zero=default)
    prod = StackSettings(target="aws", environment="prod", production=True, scale_to_zero=default)
    registry = load_registry(models_dir, {"dev": dev, "prod": prod})
    idle = {d.name: d.scale_to_zero.idle_seconds if d.scale_to_zero else None for d in stack_deployments(registry, dev)}
    assert idle == {"one": 1800, "own": 60, "split": None, "eks": None}
    assert [d.scale_to_zero for d in stack_deployments(registry, prod)] == [None] * 3  # prod refuses


def test_a_cheaper_instance_that_fits_is_proposed() -> None:
    dep = deployment("dev", **{"serving.instance": "ml.g5.12xlarge"})
    p = propose(
        dep,
        LOCAL,
        [usage([1.0] * 100)],
        Price("ml.g5.12xlarge", 7.0),
        Price("ml.g5.xlarge", 1.4),
        window="7d",
        min_minutes=60,
    )
    assert p.proposed == {"max_replicas": 1, "instance": "ml.g5.xlarge"} and p.monthly_saving_usd == pytest.approx(
        (7.0 - 1.4) * 730
    )


def test_the_registry_edit_keeps_comments_and_converts_a_flow_override() -> None:
    text = (
        "# header\nname: demo\nserving:\n  min_replicas: 1  # default\ndeployments:\n"
        "  # dev serves all day\n  dev: {}  # keep me\n  # prod is pinned\n  prod:\n    min_replicas: 2\n"
    )
    out = set_override(text, "dev", {"min_replicas": 1, "scale_to_zero": {"idle_seconds": 900}})
    assert out == (
        "# header\nname: demo\nserving:\n  min_replicas: 1  # default\ndeployments:\n"
        "  # dev serves all day\n  dev:  # keep me\n    min_replicas: 1\n    scale_to_zero: {idle_seconds: 900}\n"
        "  # prod is pinned\n  prod:\n    min_replicas: 2\n"
    )


# --------------------------------------------------------------------------- the front's busy clock


def test_busy_time_counts_overlapping_requests_once() -> None:
    now = [100.0]
    router = Router(RoutingTable(model="m"), clock=lambda: now[0])
    router.acquire("a:1")
    now[0] = 101.0
    router.acquire("a:1")  # a second request while busy
    now[0] = 102.0
    router.release("a:1")
    assert router.busy_seconds("a:1") == pytest.approx(2.0)  # still busy: the open period counts
    now[0] = 103.0
    router.release("a:1")
    now[0] = 110.0
    assert router.busy_seconds("a:1") == pytest.approx(3.0) and router.last_used["a:1"] == 103.0


# --------------------------------------------------------------------------- CloudWatch


START = datetime(2026, 1, 1, tzinfo=UTC)


def _client() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _answer(minutes: int, tokens: bool) -> list[dict[str, Any]]:
    ts = [START + timedelta(minutes=i) for i in range(minutes)]

    def one(suffix: str, values: list[float]) -> dict[str, Any]:
        return {"Id": f"u0_{suffix}", "Timestamps": ts[: len(values)], "Values": values, "StatusCode": "Complete"}

    out = [
        one("req", [120.0] * minutes),  # 2 requests a second
        one("lat", [1_500_000.0] * minutes),  # 1.5 s each: 3 in flight
        one("p95", [2_500_000.0]),
        one("inst", [2.0] * minutes),  # two instances reporting each minute
        one("gpu", [50.0] * minutes),  # 50 % of one GPU
    ]
    if tokens:
        out += [one("pt", [1_000_000.0]), one("ct", [500_000.0])]
    else:
        out += [one("pt", []), one("ct", [])]
    return out


def test_cloudwatch_usage_reads_sagemaker_series_and_token_metrics() -> None:
    cw = _client()
    end = START.timestamp() + 3600
    with Stubber(cw) as stub:
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": _answer(60, tokens=True)},
            {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": "TimestampAscending"},
        )
        (u,) = cloudwatch.collect(cw, "llmops-dev-demo", "demo", {"v1": "v1"}, 1, 3600, end)
        stub.assert_no_pending_responses()
    assert u.requests == 7200 and u.tokens == 1_500_000 and u.served_minutes == 60
    assert u.replica_seconds == 2 * 3600 and u.mean_replicas == 2 and u.utilisation == pytest.approx(0.5)
    assert u.concurrency == [pytest.approx(3.0)] * 60 and u.p95_latency_s == pytest.approx(2.5)
    queries = cloudwatch.usage_queries("llmops-dev-demo", {"v1": "v1"}, 3600)
    asked = {(q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"]) for q in queries}
    assert ("AWS/SageMaker", "Invocations") in asked and ("LLMOps/Usage", "PromptTokens") in asked
    assert all(
        {"Name": "EndpointName", "Value": "llmops-dev-demo"} in q["MetricStat"]["Metric"]["Dimensions"] for q in queries
    )


def test_a_scale_to_zero_endpoint_is_measured_through_its_inference_component() -> None:
    """SageMaker reports a component's invocations and latency by its name; instances stay per variant."""
    cw = _client()
    with Stubber(cw) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": _answer(60, tokens=True)})
        (u,) = cloudwatch.collect(
            cw, "llmops-dev-demo", "demo", {"v1": "AllTraffic"}, 1, 3600, START.timestamp() + 3600, "llmops-dev-demo-ic"
        )
    assert u.requests == 7200 and u.mean_replicas == 2 and u.concurrency == [pytest.approx(3.0)] * 60
    queries = cloudwatch.usage_queries("llmops-dev-demo", {"v1": "AllTraffic"}, 3600, "llmops-dev-demo-ic")
    dims = {q["Id"].split("_")[1]: q["MetricStat"]["Metric"]["Dimensions"] for q in queries}
    component = [{"Name": "InferenceComponentName", "Value": "llmops-dev-demo-ic"}]
    assert dims["req"] == dims["lat"] == dims["p95"] == component
    variant = [{"Name": "EndpointName", "Value": "llmops-dev-demo"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    assert dims["inst"] == dims["gpu"] == variant


def test_cloudwatch_without_token_metrics_reports_tokens_unmeasured() -> None:
    cw = _client()
    with Stubber(cw) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": _answer(30, tokens=False)})
        (u,) = cloudwatch.collect(cw, "e", "demo", {"v1": "v1"}, 4, 1800, START.timestamp() + 1800)
    assert u.tokens is None and any("tokens not measured" in n for n in u.notes)
    assert MeasuredCost(u, PRICE, 1).usd_per_million_tokens is None


# --------------------------------------------------------------------------- the commands, as installed


def _llmops(*args: str) -> Any:
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("llmops")
    env = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_commands_refuse_bad_input_with_one_line_naming_it() -> None:
    no_stack = _llmops("cost", "--measured")
    assert no_stack.returncode == 1 and "--measured needs --stack" in no_stack.stderr
    unknown = _llmops("rightsize", "--stack", "nope", "--window", "1h")
    assert unknown.returncode == 1 and "no stack 'nope'" in unknown.stderr
    window = _llmops("rightsize", "--stack", "dev", "--window", "5s")
    assert window.returncode == 2 and "argument --window: '5s' is not a duration" in window.stderr
    commit = _llmops("rightsize", "--stack", "dev", "--commit")
    assert commit.returncode == 1 and "--commit needs --write" in commit.stderr
