"""What each shipped AWS stack builds of the shared infrastructure, and the notes a preview prints.

Proves: the shipped prod (every model on SageMaker, weights from the Hub) builds no EKS
cluster but keeps NAT, and says so with the models that need it; dev and staging keep their
cluster for their EKS models. Cannot prove: that the program follows it (tests/mocks does).
"""

from __future__ import annotations

import pytest

from llmops.footprint import stack_footprint
from llmops.registry import load_registry
from llmops.settings import load_all_stacks
from llmops.sizing import stack_deployments
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit


def test_shipped_stacks_footprints() -> None:
    stacks = load_all_stacks(REPO / "stacks")
    registry = load_registry(REPO / "models", stacks)
    prints = {s: stack_footprint(stacks[s], stack_deployments(registry, stacks[s])) for s in ("dev", "staging", "prod")}
    assert prints["dev"].eks and prints["staging"].eks
    # Mistral serves on EKS and fine-tunes in a SageMaker pipeline.
    assert prints["dev"].eks_users == ["mistral-7b-instruct (endpoint on EKS)"]
    prod = prints["prod"]
    assert not prod.eks and prod.nat
    notes = prod.notes("prod")
    assert notes[0].startswith(
        "prod: no EKS cluster, node pools or system nodes: every model serves and trains on SageMaker"
    )
    assert notes[1] == (
        "prod: NAT gateways kept for llama-3-1-70b-instruct (loads weights from the Hugging Face Hub), "
        "llama-3-1-8b-instruct (loads weights from the Hugging Face Hub)"
    )
    assert stack_footprint(stacks["local"], []).notes("local") == []
