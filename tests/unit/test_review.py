"""The pure parts of review stacks: ports per pull request, TTLs from tags, the review comment.

Proves: review stacks of 1000 consecutive pull requests get disjoint port ranges clear
of the local stack's; a stack expires at created-at + ttl, and one with unreadable
tags counts as expired (reap takes it rather than leaving it forever); the comment
puts head's answer beside base's per prompt, escapes table cells and says when base
had no answer; each gate shows base's value, head's and the change, and a head
above its threshold but worse than base by more than `max_regression_vs_serving` fails.
Cannot prove: anything the engine does (tests/gitops/test_review.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from llmops.ci.results import RunResult
from llmops.ci.review import PORT_SPAN, Opened, ReviewStack, base_port
from llmops.ci.review_comment import REVIEW_MARKER, review_comment
from llmops.ci.smoke import Answer, Smoke

pytestmark = pytest.mark.unit

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
