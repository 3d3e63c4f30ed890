"""An environment split into a platform stack and one stack per model (llmops.layout), under mocks.

The contract `llmops migrate-stacks` relies on: every resource the single stack holds is
built by exactly one of the split stacks, under the same URN but for its stack, with the
same inputs, so `pulumi state move` carries it and the next `up` changes nothing.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from llmops.layout import model_settings, owned_by, urn_type_and_name
from llmops.registry import Registry, load_registry
from llmops.settings import StackSettings, load_all_stacks, load_stack_settings
from tests.mocks.harness import REPO, Graph, Registered, run_platform

ORG_PROJECT = "organization/llmops"
# What only the split layout adds: each model stack's reference to its platform, and its dashboard.
SPLIT_ONLY = {"pulumi:pulumi:StackReference", "aws:cloudwatch/dashboard:Dashboard"}


def _registry() -> Registry:
    return load_registry(REPO / "models", load_all_stacks(REPO / "stacks"))


def _split(env: str) -> tuple[StackSettings, Registry, Graph, dict[str, Graph], dict[str, Any]]:
    settings = load_stack_settings(REPO / "stacks" / f"Pulumi.{env}.yaml").model_copy(update={"layout": "split"})
    registry = _registry()
    outputs: dict[str, Any] = {}
    platform = run_platform(env, settings, registry, part="platform", outputs=outputs)
    references = {f"{ORG_PROJECT}/{env}": outputs}
    models = {
        dep.name: run_platform(
            f"{env}.{dep.name}", model_settings(settings, dep.name), registry, part="model", references=references
        )
        for dep in registry.deployed_to(env)
    }
    return settings, registry, platform, models, outputs


def _in_env(urn: str, env: str) -> str:
    """A URN as the environment's single stack names it."""
    head, stack, rest = urn.split("::", 2)[0], urn.split("::", 2)[0].split(":")[-1], urn.split("::", 1)[1]
    return f"{head.removesuffix(stack)}{env}::{rest}"


def _plain(value: Any) -> Any:
    """Inputs compared by value: an asset or archive by its kind and what it reads."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return (
            type(value).__name__,
            *(str(getattr(value, a)) for a in ("path", "text", "uri", "assets") if hasattr(value, a)),
        )
    return value


def _custom(graph: Graph) -> dict[str, Registered]:
    return {r.urn: r for r in graph.resources if r.custom}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_resource_lands_in_exactly_one_split_stack_under_its_urn(env: str) -> None:
    _, registry, platform, models, _ = _split(env)
    single = run_platform(env, load_stack_settings(REPO / "stacks" / f"Pulumi.{env}.yaml"), registry)
    before = _custom(single)
    owners: dict[str, list[str]] = {}
    for stack, graph in [(env, platform), *((f"{env}.{m}", g) for m, g in models.items())]:
        for urn, r in _custom(graph).items():
            if r.type in SPLIT_ONLY and _in_env(urn, env) not in before:
                continue
            owners.setdefault(_in_env(urn, env), []).append(stack)
    # A model stack's Kubernetes provider is its platform's, by URN: a moved workload keeps it.
    shared = {
        urn: stacks for urn, stacks in owners.items() if len(stacks) > 1 and "pulumi:providers:kubernetes" not in urn
    }
    assert shared == {}
    assert set(owners) - set(before) == set(), "the split stacks build something the single stack has no URN for"
    assert set(before) - set(owners) == set(), "the split stacks leave out something the single stack has"
    # The moved resources get the inputs they have today: the next `up` after the move changes nothing.
    for model, graph in models.items():
        for urn, r in _custom(graph).items():
            original = before.get(_in_env(urn, env))
            if original is not None and r.type not in SPLIT_ONLY:
                assert _plain(r.inputs) == _plain(original.inputs), (
                    f"{model}: {r.type} {r.name} would change when moved"
                )


def test_model_stacks_hold_their_model_and_the_platform_the_rest() -> None:
    _, registry, platform, models, outputs = _split("dev")
    assert set(models) == {d.name for d in registry.deployed_to("dev")}
    for model, graph in models.items():
        tags = {r.inputs.get("tags", {}).get("model") for r in graph.resources if r.custom and r.inputs.get("tags")}
        assert tags <= {model}, f"{model}'s stack tags resources of {tags - {model}}"
        refs = graph.of_type("pulumi:pulumi:StackReference")
        assert [r.inputs["name"] for r in refs] == [f"{ORG_PROJECT}/dev"]
    assert not [r for r in platform.resources if r.type.startswith("llmops:model_endpoint")]
    assert platform.of_type("aws:eks/cluster:Cluster"), "mistral serves on EKS in dev: the platform keeps the cluster"
    # The kubeconfig reaches model stacks as a secret output of the platform.
    assert "kubeconfig" in outputs["platform"] and outputs["platform"]["alarmTopicArn"]


def test_only_a_model_on_eks_builds_a_kubernetes_provider_and_its_rules() -> None:
    _, _, _, models, _ = _split("dev")
    on_eks = {m for m, g in models.items() if g.of_type("pulumi:providers:kubernetes")}
    assert on_eks == {"mistral-7b-instruct"}
    rules = [r for r in models["mistral-7b-instruct"].resources if r.inputs.get("kind") == "PrometheusRule"]
    assert [r.inputs["metadata"]["name"] for r in rules] == ["llmops-slo-mistral-7b-instruct"]


def test_a_model_stack_judges_its_environment_budget() -> None:
    """The budget spans the environment: each model stack's Platform carries the whole environment's cost."""
    settings, _, platform, models, _ = _split("prod")
    facts = platform.one("llmops:platform:Platform", "llmops").inputs
    for model, graph in models.items():
        mine = graph.one("llmops:platform:Platform", "llmops").inputs
        assert mine["monthlyCostUsd"] == facts["monthlyCostUsd"] > 0
        assert mine["stack"] == f"prod.{model}" and mine["part"] == "model"
        assert mine["budgetMonthlyUsd"] == settings.budget_monthly_usd


def test_a_model_stack_of_a_missing_platform_output_fails_with_the_fix() -> None:
    settings = load_stack_settings(REPO / "stacks" / "Pulumi.dev.yaml").model_copy(update={"layout": "split"})
    references: dict[str, dict[str, Any]] = {f"{ORG_PROJECT}/dev": {"platform": {}}}
    with pytest.raises(Exception, match=r"platform stack dev exports no .*pulumi up --stack dev"):
        run_platform(
            "dev.mistral-7b-instruct",
            model_settings(settings, "mistral-7b-instruct"),
            _registry(),
            part="model",
            references=references,
        )


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_migrate_stacks_moves_exactly_what_each_model_stack_builds(env: str) -> None:
    """`model_roots` names, in the single stack, the top-level resources whose subtrees are the
    model stack's resources (less what the split adds): what `pulumi state move` carries."""
    _, registry, _, models, _ = _split(env)
    single = run_platform(env, load_stack_settings(REPO / "stacks" / f"Pulumi.{env}.yaml"), registry)
    urns = [r.urn for r in single.resources]
    index = single.by_urn()
    for model, graph in models.items():
        roots = set(owned_by(urns, model))
        assert roots, f"{model}: nothing to move"
        moved = {
            r.urn
            for r in single.resources
            if r.custom and (r.urn in roots or roots & {a.urn for a in single.ancestors(r)})
        }
        built = {
            _in_env(r.urn, env)
            for r in graph.resources
            if r.custom and r.type not in SPLIT_ONLY and not r.type.startswith("pulumi:providers:")
        }
        assert moved == built, f"{model}: moved but not built {moved - built}, built but not moved {built - moved}"
        # `pulumi state move` leaves a moved resource whose parent stays behind under the stack's
        # root: each root is found there by an alias, so the model stack's first `up` changes nothing.
        for root in roots:
            kind, logical = urn_type_and_name(root)
            [mine] = [r for r in graph.resources if (r.type, r.name) == (kind, logical)]
            assert f"urn:pulumi:{env}.{model}::llmops::{kind}::{logical}" in mine.aliases, mine.aliases
        assert all(index[u].type.startswith("llmops:") or index[u].custom for u in roots)


def test_a_model_stack_of_a_model_no_longer_deployed_holds_nothing() -> None:
    """A model retired from the environment: its stack's next `up` deletes what it held."""
    settings, registry, _, _, outputs = _split("prod")
    graph = run_platform(
        "prod.retired",
        model_settings(settings, "retired"),
        registry,
        part="model",
        references={f"{ORG_PROJECT}/prod": outputs},
    )
    assert {r.type for r in graph.resources if r.custom} == {"pulumi:pulumi:StackReference"}
