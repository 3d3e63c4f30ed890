"""The pure parts of review stacks: ports per pull request, TTLs from tags, the review comment.

Proves: review stacks of 1000 consecutive pull requests get disjoint port ranges clear
of the local stack's; a stack expires at created-at + ttl, and one with unreadable
tags counts as expired (reap takes it rather than leaving it forever); the comment
puts head's answer beside base's per prompt, escapes table cells and says when base
had no answer; each gate shows base's value, head's and the change, and a head
above its threshold but worse than base by more than `max_regression_vs_serving` fails.
AWS review stacks: names carry their environment (`pr-N-<env>`) and reap/close tell
them apart; the review settings are validated with the file and key at fault; only
environments that opt in are listed for the workflow; the comment shows each AWS
endpoint's URL, and a capacity refusal says why.
Cannot prove: anything the engine does (tests/gitops/test_review.py, test_review_aws.py).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from llmops.ci.results import RunResult
from llmops.ci.review import PORT_SPAN, Opened, ReviewStack, base_port, stack_environment, stack_name
from llmops.ci.review_cli import cmd_environments
from llmops.ci.review_comment import REVIEW_MARKER, review_comment
from llmops.ci.smoke import Answer, Smoke
from llmops.settings import ReviewSettings, StackSettingsError, load_all_stacks, load_stack_settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LOCAL_BASE = 18400  # the local stack's default basePort


def test_review_port_ranges_are_disjoint_and_clear_of_the_local_stack() -> None:
    ranges = sorted((base_port(pr), base_port(pr) + PORT_SPAN) for pr in range(1, 1001))
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(ranges))
    assert all(end <= LOCAL_BASE or start >= LOCAL_BASE + PORT_SPAN for start, end in ranges)
    assert max(end for _, end in ranges) <= 65000


def test_a_stack_expires_at_created_plus_ttl() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    stack = ReviewStack.from_tags("pr-3", {"pr": "3", "created-at": created.isoformat(), "ttl": "2"})
    assert stack.pr == 3 and stack.ttl == timedelta(hours=2)
    assert not stack.expired(created + timedelta(hours=1, minutes=59))
    assert stack.expired(created + timedelta(hours=2))


def test_a_stack_with_unreadable_tags_counts_as_expired() -> None:
    stack = ReviewStack.from_tags("pr-12", {"created-at": "yesterday"})
    assert stack.pr == 12 and stack.expired(datetime.now(UTC))


def test_the_comment_puts_heads_answer_beside_bases() -> None:
    opened = Opened("pr-7", ["tiny-chat"], 20280, RunResult("pr-7", "up", 0, "", {"create": 5}))
    head = Smoke("http://127.0.0.1:20281", "ok", "ok", [Answer("Hi", "a | b", 120.0), Answer("Bye", None, 5.0, "500")])
    base = Smoke("http://127.0.0.1:18401", "ok", "ok", [Answer("Hi", "old answer", 90.0)])
    body = review_comment(opened, {"tiny-chat": head}, {"tiny-chat": base}, {"tiny-chat": "local does not serve it"})
    assert body.startswith(REVIEW_MARKER + "\n")
    assert "| Hi | a \\| b (120 ms) | old answer |" in body
    assert "| Bye | _failed: 500_ (5 ms) | _local does not serve it_ |" in body
    assert "latency over 1 request(s)" in body


def _record(value: float, weights: str) -> dict[str, object]:
    return {
        "suite": "tiny-chat-tasks",
        "suiteSha256": "a" * 64,
        "weights": weights,
        "lmEvalVersion": "0.4.9",
        "evaluatedAt": "2026-11-30T00:00:00+00:00",
        "where": "host:ci",
        "metrics": {"exact_match": value},
    }


def test_the_comment_shows_each_gate_base_to_head_and_fails_a_regression() -> None:
    from llmops.registry import EvaluationGate

    gates = {
        "tiny-chat": [
            EvaluationGate(suite="tiny-chat-tasks", metric="exact_match", threshold=0.15, max_regression_vs_serving=0.1)
        ]
    }
    opened = Opened(
        "pr-7",
        ["tiny-chat"],
        20280,
        RunResult("pr-7", "up", 0, "", {"create": 5}),
        evaluations={"tiny-chat": {"v2": {"tiny-chat-tasks": _record(0.7, "b" * 64)}}},
    )
    base = {"tiny-chat": {"v1": {"tiny-chat-tasks": _record(0.975, "c" * 64)}}}
    body = review_comment(opened, {}, {}, {}, gates, base)
    # Above the threshold, but 0.275 worse than what base serves: the challenger loses.
    row = next(line for line in body.splitlines() if line.startswith("| `v2` |"))
    assert "| tiny-chat-tasks/exact_match ≥ 0.15 | 0.975 | 0.7 | -0.275 |" in row
    assert "**failed**" in row and "max_regression_vs_serving" in row

    better = {"tiny-chat": {"v1": {"tiny-chat-tasks": _record(0.72, "c" * 64)}}}
    assert "| 0.72 | 0.7 | -0.02 | passed |" in review_comment(opened, {}, {}, {}, gates, better)
    # No base stack: head's values with the reason base has none.
    alone = review_comment(opened, {}, {}, {"tiny-chat": "no local stack serves base"}, gates, None)
    assert "| n/a | 0.7 | n/a | passed |" in alone and "_Base: no local stack serves base._" in alone


# --------------------------------------------------------------------------- AWS review stacks


def test_review_stack_names_say_their_environment() -> None:
    assert (stack_name(7), stack_name(7, "staging")) == ("pr-7", "pr-7-staging")
    assert [stack_environment(n) for n in ("pr-7", "pr-7-staging", "staging", "pr-x", "local")] == [
        "local",
        "staging",
        None,
        None,
        None,
    ]
    created = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    tags = {"pr": "7", "created-at": created, "ttl": "24"}
    assert ReviewStack.from_tags("pr-7-staging", tags).environment == "staging"
    assert ReviewStack.from_tags("pr-7", tags).environment == "local"


def _stack_file(tmp_path: Path, review: object, target: str = "aws") -> Path:
    path = tmp_path / "Pulumi.x.yaml"
    config = {"llmops:target": target, "llmops:environment": "staging", "llmops:review": review}
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def test_review_settings_are_validated_with_the_file_and_key_at_fault(tmp_path: Path) -> None:
    assert load_stack_settings(_stack_file(tmp_path, {"enabled": True, "ttl": 6, "capacity": 3})).review == (
        ReviewSettings(enabled=True, ttl=6, capacity=3)
    )
    with pytest.raises(StackSettingsError) as bad:
        load_stack_settings(_stack_file(tmp_path, {"enabled": True, "ttl": -1, "capacty": 2}))
    lines = str(bad.value).splitlines()
    assert "stacks/Pulumi.x.yaml: llmops:review.ttl: Input should be greater than 0 (got -1)" in lines
    assert "stacks/Pulumi.x.yaml: llmops:review.capacty: Extra inputs are not permitted (got 2)" in lines
    with pytest.raises(StackSettingsError, match=r"stacks/Pulumi.x.yaml: .*review.enabled applies to AWS stacks"):
        load_stack_settings(_stack_file(tmp_path, {"enabled": True}, target="local"))


def test_only_environments_that_opt_in_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(repo=REPO)
    assert cmd_environments(args) == 0
    enabled = json.loads(capsys.readouterr().out)
    stacks = load_all_stacks(REPO / "stacks")
    assert enabled == sorted({s.environment for s in stacks.values() if s.review.enabled}) == ["staging"]


def test_the_aws_comment_shows_each_endpoint_url_and_a_refusal_says_why() -> None:
    url = "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/llmops-pr-7-staging-m/invocations"
    opened = Opened(
        "pr-7-staging",
        ["m", "n"],
        0,
        RunResult("pr-7-staging", "up", 0, "", {"create": 30}),
        {"m": {"url": url, "instanceType": "ml.g5.xlarge"}},
        environment="staging",
    )
    body = review_comment(opened, {}, {}, {})
    assert f"| `m` | `{url}` | ml.g5.xlarge |" in body
    assert "| `n` | _not in the stack outputs_ | _n/a_ |" in body
    assert "Up on staging: m, n, one replica each on the smallest instance that fits" in body
    refused = Opened("pr-9-staging", ["m"], 0, None, environment="staging", refused="staging is at its review capacity")
    assert "**No review stack was opened** for m: staging is at its review capacity." in review_comment(
        refused, {}, {}, {}
    )
    # Its own comment: the marker names the environment, and the local comment's marker is no prefix of it.
    assert body.startswith("<!-- llmops:review:staging -->\n") and not body.startswith(REVIEW_MARKER)


def test_the_local_comment_links_the_review_stacks_dashboard() -> None:
    ok = RunResult("pr-7", "up", 0, "", {"create": 12})
    with_dashboard = Opened("pr-7", ["tiny-chat"], 21400, ok, dashboard_url="http://127.0.0.1:21403")
    body = review_comment(with_dashboard, {}, {}, {})
    assert "Dashboard of every model and version on the review stack: http://127.0.0.1:21403" in body
    assert "Dashboard" not in review_comment(Opened("pr-7", ["tiny-chat"], 21400, ok), {}, {}, {})
