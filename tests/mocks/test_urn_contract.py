"""URNs are a contract: every resource of the shipped AWS programs keeps its identity across a refactor.

`urns.json` holds every URN the real program (`__main__.py`, the shipped registry and
stack files) registered for dev, staging and prod at the commit it names, before the
capability components were split into child components. Run now, each of those URNs
must be a resource's URN or one of its aliases (as the engine resolves them: alias
specs plus the parent's aliases carried down), so `pulumi up` after the refactor finds
every resource in the state and replaces none.
Proves: nothing recorded is orphaned (which the engine would delete and re-create), no
two resources claim one old URN, and the moves are real (some recorded URNs are reached
only through an alias, so the check is not passing on unchanged URNs alone).
Cannot prove: what AWS would do; the local engine test (tests/engine/test_upgrade.py)
runs the real engine through an upgrade. When a commit removes a resource on purpose
(a model leaves an environment), regenerate the file from that commit with
`python -m tests.mocks.urn_contract` and say so in the commit.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from .conftest import AWS_STACKS
from .harness import REPO, Graph, run_program

pytestmark = pytest.mark.mocks

RECORD = REPO / "tests" / "mocks" / "urns.json"


@pytest.fixture(scope="module")
def recorded() -> dict[str, list[str]]:
    data = json.loads(RECORD.read_text())
    return dict(data["urns"])


def identities(graph: Graph) -> dict[str, str]:
    """Every URN a resource answers to (its own and its aliases) -> that resource's URN."""
    claims = Counter(a for r in graph.resources for a in {r.urn, *r.aliases})
    doubled = sorted(a for a, n in claims.items() if n > 1)
    assert not doubled, f"several resources claim one URN: {doubled[:5]}"
    return {a: r.urn for r in graph.resources for a in (r.urn, *r.aliases)}


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_recorded_urn_is_a_urn_or_alias_now(stack: str, recorded: dict[str, list[str]]) -> None:
    graph = run_program(stack)
    found = identities(graph)
    missing = [urn for urn in recorded[stack] if urn not in found]
    assert not missing, f"{len(missing)} resource(s) of {stack} would be replaced:\n" + "\n".join(missing[:20])
    # The refactor moved resources under child components: those are reached through aliases only.
    moved = [urn for urn in recorded[stack] if found[urn] != urn]
    assert moved, "no recorded URN needed an alias: the record or the harness is stale"
    for urn in moved:  # a moved resource keeps its type and name; only its parent chain changed
        assert found[urn].rsplit("::", 1)[1] == urn.rsplit("::", 1)[1]
        assert found[urn].split("::")[2].rsplit("$", 1)[-1] == urn.split("::")[2].rsplit("$", 1)[-1]


def test_an_unaliased_move_is_caught(recorded: dict[str, list[str]]) -> None:
    """The check above fails when a moved resource loses its alias."""
    graph = run_program("dev")
    vpc = next(r for r in graph.resources if r.type == "aws:ec2/vpc:Vpc")
    assert vpc.aliases, "the VPC moved under the Network group and must carry an alias"
    vpc.aliases = []
    found = identities(graph)
    (old,) = [urn for urn in recorded["dev"] if urn.endswith("$aws:ec2/vpc:Vpc::llmops-cluster-vpc")]
    assert [urn for urn in recorded["dev"] if urn not in found] == [old]
