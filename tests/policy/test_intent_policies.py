"""Policies on the registry's intent, each shown passing and failing.

Proves: every intent rule (instance allowlist, GPU and replica quotas, budget,
training spot/checkpoint/max runtime, pinned revision, evaluation gate,
licence) reads the inputs the components really declare (built with the
registry and `endpoint_facts`), in the engine's shape, and names the file and
field to fix; stack limits come from the Platform analyzed before its children,
per stack. Cannot prove: the engine's call order (tests/policy/test_pack_engine.py
does, with the real CLI) nor that the Platform computes its cost correctly
(llmops.cost's own tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.cost import CostLine, stack_cost
from llmops.evaluation.record import EvaluationRecord
from llmops.evaluation.records import RECORDS_ENV, write_record
from llmops.registry import Registry
from llmops.settings import StackSettings, load_all_stacks
from policies.facts import ENDPOINT, PLATFORM
from policies.props import usd
from tests.policy.conftest import (
    REPO,
    SHA,
    Pack,
    endpoint_args,
    endpoint_props,
    model_entry,
    platform_args,
    resource_args,
    stack_settings,
    training_args,
)

pytestmark = pytest.mark.policy

PROD_ALLOWED = ["ml.g5.2xlarge", "ml.g5.12xlarge", "g5.2xlarge"]


def prod(**config: Any) -> StackSettings:
    policy = {"allowedInstanceTypes": PROD_ALLOWED, **config.pop("policy", {})}
    return stack_settings(policy=policy, **config)


def run(pack: Pack, policy: str, settings: StackSettings, *resources: Any, **platform: Any) -> list[str]:
    """Analyze the stack's Platform first, as the engine does, then `resources`."""
    return pack.messages(policy, platform_args(settings, **platform), *resources)


# --------------------------------------------------------------------------- instance types


def test_allowed_instance_passes(pack: Pack) -> None:
    settings = prod()
    assert run(pack, "allowed-instance-types", settings, endpoint_args(settings)) == []


def test_disallowed_endpoint_instance_names_the_fix(pack: Pack) -> None:
    settings = prod()
    [message] = run(
        pack, "allowed-instance-types", settings, endpoint_args(settings, instance="ml.p5.48xlarge", gpus=8)
    )
    assert message.startswith("models/tiny-chat.yaml: tiny-chat runs on ml.p5.48xlarge")
    assert "stacks/Pulumi.teststack.yaml: llmops:policy.allowedInstanceTypes" in message
    assert "deployments.prod.instance" in message


def test_disallowed_training_instance(pack: Pack) -> None:
    settings = prod()
    [message] = run(pack, "allowed-instance-types", settings, training_args(settings, instance="ml.p4d.24xlarge"))
    assert "training.instance ml.p4d.24xlarge is not allowed" in message


def test_empty_allowlist_allows_any_catalog_type(pack: Pack) -> None:
    settings = stack_settings()
    assert run(pack, "allowed-instance-types", settings, endpoint_args(settings, instance="ml.p5.48xlarge")) == []


# --------------------------------------------------------------------------- GPU and replica quotas


def test_gpus_per_endpoint_counts_whole_instances_on_sagemaker(pack: Pack) -> None:
    settings = prod(quotas={"maxGpusPerEndpoint": 8})
    entry = model_entry(lambda d: d["deployments"].update(prod={"max_replicas": 4}))
    # 4 replicas x ml.g5.12xlarge (4 GPUs each) = 16 GPUs, even though the model shards over 2.
    ep = endpoint_args(settings, entry, instance="ml.g5.12xlarge", gpus=4, tensor_parallel=2)
    [message] = run(pack, "gpus-per-endpoint", settings, ep)
    assert "can grow to 16 GPUs (4 replicas x 4 GPUs on ml.g5.12xlarge), over the quota of 8" in message
    assert "llmops:quotas.maxGpusPerEndpoint" in message


def test_gpus_per_endpoint_counts_shards_on_eks(pack: Pack) -> None:
    settings = prod(quotas={"maxGpusPerEndpoint": 8})
    entry = model_entry(lambda d: d["deployments"].update(prod={"max_replicas": 4, "platform": "eks"}))
    ep = endpoint_args(settings, entry, instance="g5.12xlarge", gpus=4, tensor_parallel=2)
    assert run(pack, "gpus-per-endpoint", settings, ep) == []  # 4 pods x 2 GPUs = 8


def test_replicas_over_quota(pack: Pack) -> None:
    settings = prod(quotas={"maxReplicasPerEndpoint": 4})
    within = endpoint_args(settings, model_entry(lambda d: d["deployments"].update(prod={"max_replicas": 4})))
    over = endpoint_args(settings, model_entry(lambda d: d["deployments"].update(prod={"max_replicas": 6})))
    assert run(pack, "autoscaling-bounds", settings, within) == []
    [message] = run(pack, "autoscaling-bounds", settings, over)
    assert "may scale to 6 replicas, over the quota of 4" in message


def test_min_above_max(pack: Pack) -> None:
    settings = prod()
    props = endpoint_props(settings)
    props.update(minReplicas=3, maxReplicas=2)
    [message] = run(pack, "autoscaling-bounds", settings, resource_args(ENDPOINT, props, "llmops-tiny-chat"))
    assert "min_replicas 3 > max_replicas 2" in message


def test_stack_limits_come_from_the_same_stack(pack: Pack) -> None:
    """A Platform of another stack (another URN prefix) never lends its quota."""
    strict = prod(quotas={"maxReplicasPerEndpoint": 1})
    other_stack = resource_args(PLATFORM, {"stack": "other", "quotas": {"maxReplicasPerEndpoint": 1}}, parents=())
    other_stack.urn = other_stack.urn.replace("teststack", "other")
    entry = model_entry(lambda d: d["deployments"].update(prod={"max_replicas": 2}))
    assert pack.messages("autoscaling-bounds", other_stack, endpoint_args(strict, entry)) == []
    assert len(run(pack, "autoscaling-bounds", strict, endpoint_args(strict, entry))) == 1


# --------------------------------------------------------------------------- budget


def test_budget_exceeded_gives_amount_budget_and_top_contributors(pack: Pack) -> None:
    settings = prod(budgetMonthlyUsd=6000)
    lines = [
        CostLine("endpoint", "llama-8b", "ml.g5.2xlarge", 4, 1.515, 4423.8),
        CostLine("node-pool", "a10g", "g5.2xlarge", 2, 1.212, 1769.52),
        CostLine("system-nodes", "system", "m6i.large", 2, 0.096, 140.16),
    ]
    [message] = pack.messages("stack-budget", platform_args(settings, cost=6333.48, lines=lines))
    assert "would cost $6,333.48/month, over its budget of $6,000.00 by $333.48" in message
    assert "stacks/Pulumi.teststack.yaml: llmops:budgetMonthlyUsd" in message
    top = message.split("Biggest contributors: ")[1]
    assert top.index("endpoint llama-8b: 4 x ml.g5.2xlarge = $4,423.80") < top.index("node-pool a10g")


def test_budget_message_from_the_project_cost_model(pack: Pack) -> None:
    """The dev stack's own cost lines (llmops.cost over the catalog: control plane, node pools, system nodes)
    against a budget they exceed. An empty registry keeps model sizing (transformers) out of this test, so
    the cluster is asked for by its setting."""
    settings = load_all_stacks(REPO / "stacks")["dev"]
    cluster = settings.cluster.model_copy(update={"create": "always"})
    settings = settings.model_copy(update={"budget_monthly_usd": 500.0, "cluster": cluster})
    cost = stack_cost("dev", settings, Registry(root=REPO / "models"), REPO / "models")
    assert cost.total_monthly_usd > 500
    [message] = pack.messages("stack-budget", platform_args(settings, cost=cost.total_monthly_usd, lines=cost.top(5)))
    assert f"would cost {usd(round(cost.total_monthly_usd, 2))}/month, over its budget of $500.00" in message
    biggest = cost.top(1)[0]
    assert f"Biggest contributors: {biggest.kind} {biggest.name}: " in message


def test_budget_is_checked_at_the_maximum_too(pack: Pack) -> None:
    """Autoscaling spends up to max_replicas without a review: the maximum must fit the budget as well."""
    settings = prod(budgetMonthlyUsd=6000)
    lines = [CostLine("endpoint", "llama-70b", "ml.g6e.12xlarge", 0.5, 13.117, 4787.71, 2, 19150.82)]
    [message] = pack.messages("stack-budget", platform_args(settings, cost=4787.71, max_cost=19150.82, lines=lines))
    assert "could cost at full scale $19,150.82/month, over its budget of $6,000.00 by $13,150.82" in message
    assert "endpoint llama-70b: 2 x ml.g6e.12xlarge = $19,150.82" in message and "Lower max_replicas" in message
    # Over at the expected cost: one report, not two.
    assert len(pack.messages("stack-budget", platform_args(settings, cost=7000, max_cost=19150.82, lines=lines))) == 1
    assert pack.messages("stack-budget", platform_args(settings, cost=4787.71, max_cost=6000, lines=lines)) == []


@pytest.mark.parametrize(("budget", "cost"), [(6000, 5999.99), (6000, 6000.0), (0, 10_000.0)])
def test_budget_within_or_unset(pack: Pack, budget: float, cost: float) -> None:
    assert pack.messages("stack-budget", platform_args(prod(budgetMonthlyUsd=budget), cost=cost)) == []


# --------------------------------------------------------------------------- training


def test_non_prod_cloud_training_needs_spot_and_checkpoint(pack: Pack) -> None:
    dev = stack_settings(environment="dev", production=False)
    messages = run(pack, "training-spot-checkpoint", dev, training_args(dev, spot=False, checkpoint=None))
    assert len(messages) == 2
    assert "training.spot is false in non-production environment 'dev'" in messages[0]
    assert "training.checkpoint is not set" in messages[1]
    assert run(pack, "training-spot-checkpoint", dev, training_args(dev)) == []


@pytest.mark.parametrize(
    "settings", [stack_settings(), stack_settings(target="local", environment="local", production=False)]
)
def test_spot_rule_skips_prod_and_the_local_target(pack: Pack, settings: StackSettings) -> None:
    assert run(pack, "training-spot-checkpoint", settings, training_args(settings, spot=False, checkpoint=None)) == []


def test_training_needs_a_max_runtime(pack: Pack) -> None:
    settings = stack_settings(target="local", environment="local", production=False)
    [message] = run(pack, "training-max-runtime", settings, training_args(settings, max_runtime=None))
    assert "training.max_runtime is not set" in message
    assert run(pack, "training-max-runtime", settings, training_args(settings, max_runtime=900)) == []


# --------------------------------------------------------------------------- production gates


def _branch(data: dict[str, Any]) -> None:
    data["versions"]["v1"]["huggingface"]["revision"] = "main"


def test_unpinned_revision_fails_in_prod(pack: Pack) -> None:
    settings = prod()
    [message] = run(pack, "pinned-model-revision", settings, endpoint_args(settings, model_entry(_branch)))
    assert "variant v1 serves hf://org/model@main, which is not pinned" in message
    assert "40-hex commit sha in versions.v1.huggingface.revision" in message
    assert run(pack, "pinned-model-revision", settings, endpoint_args(settings)) == []


def test_unpinned_variant_source_is_named(pack: Pack) -> None:
    def canary(data: dict[str, Any]) -> None:
        data["deployments"]["prod"] = {
            "variants": [
                {"version": "v1", "weight": 90},
                {"version": "v2", "weight": 10},
            ]
        }
        data["versions"]["v2"] = {"s3": {"uri": "s3://weights/v2/"}}

    settings = prod()
    [message] = run(pack, "pinned-model-revision", settings, endpoint_args(settings, model_entry(canary)))
    assert message.startswith("models/tiny-chat.yaml: variant v2 serves s3://weights/v2/")


def test_gates_apply_to_the_local_target_not_to_dev(pack: Pack) -> None:
    local = stack_settings(target="local", environment="local", production=False)
    dev = stack_settings(environment="dev", production=False)
    assert len(run(pack, "pinned-model-revision", local, endpoint_args(local, model_entry(_branch)))) == 1
    assert run(pack, "pinned-model-revision", dev, endpoint_args(dev, model_entry(_branch))) == []


def _no_gates(data: dict[str, Any]) -> None:
    data["compliance"]["evaluation"] = []


def _record(records: Path, version: str = "v1", **changes: Any) -> None:
    """A record as `llmops ci deploy` writes it after the staging evaluation."""
    record = EvaluationRecord(
        suite="assistant-basics",
        suite_sha256="a" * 64,
        model="tiny-chat",
        weights="org/model@" + SHA,
        lm_eval_version="0.4.13",
        evaluated_at="2026-11-30T12:00:00+00:00",
        where="sagemaker-endpoint:llmops-staging-tiny-chat",
        seconds=12.0,
        metrics={"accuracy": changes.pop("accuracy", 0.9)},
        examples=10,
    )
    path = write_record(records / "records", version, record, passed=changes.pop("passed", True))
    if changes:
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(RECORDS_ENV, str(tmp_path / "records"))
    return tmp_path


def test_gated_endpoints_declare_gates(pack: Pack, records: Path) -> None:
    for settings in (prod(), stack_settings(target="local", environment="local", production=False)):
        [message] = run(pack, "evaluation-gate", settings, endpoint_args(settings, model_entry(_no_gates)))
        assert "compliance.evaluation declares no gate" in message


def test_local_endpoints_are_gated_in_the_graph_not_by_records(pack: Pack, records: Path) -> None:
    local = stack_settings(target="local", environment="local", production=False)
    assert run(pack, "evaluation-gate", local, endpoint_args(local, model_entry())) == []


def test_production_needs_a_passing_traceable_record(pack: Pack, records: Path) -> None:
    settings = prod()
    [message] = run(pack, "evaluation-gate", settings, endpoint_args(settings, model_entry()))
    assert message.startswith("models/tiny-chat.yaml: version v1 may not serve in 'prod': no evaluation record")

    _record(records, accuracy=0.9)
    assert run(pack, "evaluation-gate", settings, endpoint_args(settings, model_entry())) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"accuracy": 0.6, "passed": False}, "assistant-basics/accuracy measured 0.6 against threshold 0.7"),
        ({"where": ""}, "is not traceable (missing where)"),
        ({"lmEvalVersion": None}, "is not traceable (missing lmEvalVersion)"),
    ],
)
def test_production_refuses_failing_or_untraceable_records(
    pack: Pack, records: Path, changes: dict[str, Any], expected: str
) -> None:
    _record(records, **changes)
    settings = prod()
    [message] = run(pack, "evaluation-gate", settings, endpoint_args(settings, model_entry()))
    assert expected in message


def test_licence_outside_allowlist_fails(pack: Pack) -> None:
    settings = prod(policy={"licenceAllowlist": ["apache-2.0", "mit"]})
    entry = model_entry(lambda d: d["compliance"].update(licence="cc-by-nc-4.0"))
    [message] = run(pack, "licence-allowlist", settings, endpoint_args(settings, entry))
    assert "compliance.licence 'cc-by-nc-4.0' is not on the allowlist for 'prod'" in message
    assert "llmops:policy.licenceAllowlist: apache-2.0, mit" in message


def test_licence_on_allowlist_passes_case_insensitively(pack: Pack) -> None:
    settings = prod(policy={"licenceAllowlist": ["apache-2.0"]})
    entry = model_entry(lambda d: d["compliance"].update(licence="Apache-2.0"))
    assert run(pack, "licence-allowlist", settings, endpoint_args(settings, entry)) == []


def test_licence_uses_the_default_allowlist_without_a_platform(pack: Pack) -> None:
    settings = prod()
    entry = model_entry(lambda d: d["compliance"].update(licence="proprietary"))
    assert len(pack.messages("licence-allowlist", endpoint_args(settings, entry))) == 1
