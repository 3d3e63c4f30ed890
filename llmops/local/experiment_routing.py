"""What the local front end adds for experiments: sticky assignment, pinning, feedback, shadow traffic.

- **Sticky assignment.** A request that names its user (the OpenAI `user` field or
  the `x-llmops-user` header) goes to the variant chosen by weighted rendezvous
  hashing: each variant scores `weight / -ln(h)`, with `h` a hash of (user, version)
  in (0, 1), and the highest score wins. Each variant gets its weight's share of
  users, the same user always lands on the same variant, and when weights change
  only the users that must move do (a growing canary only gains users). Requests
  without a user key keep the front's random split by weight.
- **Pinned version.** A request from loopback with `x-llmops-version: <version>` is
  answered by that version whatever its weight (the post-deploy smoke check reaches
  every variant this way); from anywhere else the front refuses the header (403), so
  no client steps out of the committed split.
- **Feedback.** Every generated answer gets a response id (`id` in the body and the
  `x-llmops-response-id` header). `POST /v1/feedback {"id": ..., "score": 0..1}` rates
  it once; a score of 0.5 or more counts as positive. The store maps ids to versions
  in bounded memory (the oldest ids are forgotten first). Counters follow the front's
  metrics contract: `llmops_feedback_total` and `llmops_feedback_positive_total` by
  model and version.
- **Shadow traffic.** With a shadow route in the table, a sample of generation
  requests is copied to the shadow replicas once the live answer is complete, so the
  copy never competes with the request it copies. Answers are read and
  discarded, never returned; their status and latency go to
  `llmops_shadow_requests_total` and `llmops_shadow_request_duration_seconds`, apart
  from the live series so SLO alerts and experiments never count them. At most
  `max_in_flight` copies run at once; beyond that a copy is dropped (and counted), so
  a slow shadow never slows or grows the live path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
import os
import random
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError

USER_HEADER = "x-llmops-user"
# On a request, from loopback only: that version answers, whatever the split (`llmops experiment smoke`).
PIN_HEADER = "x-llmops-version"
RESPONSE_ID_HEADER = "x-llmops-response-id"
FEEDBACK_ROUTE = "/v1/feedback"
POSITIVE_SCORE = 0.5
SHADOW_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_TWO_64 = float(2**64)


class Weighted(Protocol):
    @property
    def version(self) -> str: ...
    @property
    def weight(self) -> int: ...


V = TypeVar("V", bound=Weighted)

# --------------------------------------------------------------------------- assignment


def _unit_hash(key: str, version: str) -> float:
    """A uniform number in (0, 1) from (key, version)."""
    digest = hashlib.blake2b(f"{version}\x00{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64


def assign(key: str, variants: Sequence[V]) -> V | None:
    """The variant a user key sticks to, by weighted rendezvous hashing (weight 0 never wins)."""
    best: V | None = None
    best_score = -math.inf
    for v in variants:
        if v.weight <= 0:
            continue
        score = v.weight / -math.log(_unit_hash(key, v.version))
        if score > best_score:
            best, best_score = v, score
    return best


def user_key(body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The OpenAI `user` field, else the x-llmops-user header; None when neither is given."""
    user = body.get("user")
    if isinstance(user, str) and user:
        return user
    return headers.get(USER_HEADER) or None


# --------------------------------------------------------------------------- feedback


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    score: float = Field(ge=0, le=1, description="0 (bad) .. 1 (good); 0.5 or more is positive.")


class ResponseLog:
    """Response id -> version of the answers not yet rated, the newest `capacity` kept."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._versions: OrderedDict[str, str] = OrderedDict()

    def remember(self, response_id: str, version: str) -> None:
        self._versions[response_id] = version
        if len(self._versions) > self.capacity:
            self._versions.popitem(last=False)

    def take(self, response_id: str) -> str | None:
        """The version that answered, once: a response is rated at most one time."""
        return self._versions.pop(response_id, None)

    def __len__(self) -> int:
        return len(self._versions)


class ShadowRoute(BaseModel):
    """The routing table's shadow entry (written by the endpoint provider)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    percent: float = Field(gt=0, le=100)
    upstreams: list[str] = Field(min_length=1, description="host:port of each shadow replica.")


class Experiments:
    """The front's experiment features, with their series in the front's metrics registry."""

    def __init__(
        self,
        model: str,
        registry: CollectorRegistry,
        *,
        capacity: int = 100_000,
        max_in_flight: int = 8,
        rng: random.Random | None = None,
    ):
        self.model = model
        self.enabled = True  # off: the front behaves as without experiments (benchmarks compare both)
        self.responses = ResponseLog(capacity)
        self._ids = itertools.count()
        self._id_key = os.urandom(16)
        self.rng = rng or random.Random()
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.feedback = Counter("llmops_feedback", "Ratings of answers.", ["model", "version"], registry=registry)
        self.positive = Counter(
            "llmops_feedback_positive", "Ratings of 0.5 or more.", ["model", "version"], registry=registry
        )
        self.shadow_requests = Counter(
            "llmops_shadow_requests",
            "Requests mirrored to the shadow version, by status ('dropped': over the in-flight cap).",
            ["model", "version", "code"],
            registry=registry,
        )
        self.shadow_duration = Histogram(
            "llmops_shadow_request_duration_seconds",
            "Latency of mirrored requests.",
            ["model", "version"],
            buckets=SHADOW_BUCKETS,
            registry=registry,
        )

    def key_of(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
        return user_key(body, headers) if self.enabled else None

    # responses and feedback
    def new_response(self, version: str) -> str | None:
        """A fresh response id remembered for feedback (None when off: the runtime's id stays)."""
        if not self.enabled:
            return None
        # A keyed hash of a counter: unique in this process and unguessable (nobody rates
        # another user's answer), at a tenth of uuid4's cost.
        n = next(self._ids)
        response_id = "chatcmpl-" + hashlib.blake2b(n.to_bytes(8, "big"), key=self._id_key, digest_size=12).hexdigest()
        self.responses.remember(response_id, version)
        return response_id

    def rate(self, payload: bytes) -> tuple[int, dict[str, Any]]:
        """(status, body) for a POST /v1/feedback request body (JSON)."""
        try:
            body = FeedbackBody.model_validate_json(payload)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return 400, _error(f"{where}: {first['msg']}")
        version = self.responses.take(body.id)
        if version is None:
            return 404, _error(f"no unrated response {body.id!r} (unknown, already rated, or too old)")
        self.feedback.labels(self.model, version).inc()
        if body.score >= POSITIVE_SCORE:
            self.positive.labels(self.model, version).inc()
        return 200, {"id": body.id, "version": version, "score": body.score}

    # shadow traffic
    def mirror(
        self, shadow: ShadowRoute | None, client: httpx.AsyncClient, route: str, body: Mapping[str, Any]
    ) -> None:
        """Copy a sample of requests to the shadow replicas, in the background."""
        if shadow is None or not self.enabled or self.rng.random() * 100 >= shadow.percent:
            return
        if self.in_flight >= self.max_in_flight:
            self.shadow_requests.labels(self.model, shadow.version, "dropped").inc()
            return
        address = self.rng.choice(shadow.upstreams)
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._shadow(client, shadow.version, address, route, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self, client: httpx.AsyncClient, version: str, address: str, route: str, body: Mapping[str, Any]
    ) -> None:
        start = time.perf_counter()
        code = "error"
        try:
            r = await client.post(f"http://{address}{route}", json={**body, "stream": False})
            code = str(r.status_code)
        except httpx.HTTPError:
            pass
        finally:
            self.in_flight -= 1
            self.shadow_requests.labels(self.model, version, code).inc()
            self.shadow_duration.labels(self.model, version).observe(time.perf_counter() - start)

    async def drain(self) -> None:
        """Wait for the mirrored requests still running (shutdown, tests)."""
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._tasks, return_exceptions=True)


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}
