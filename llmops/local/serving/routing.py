"""The routing table the endpoint provider writes and the front reads, and the front's router.

The table is the contract between the two processes: which versions serve, with
what weight, on which replicas, and what each replica needs to be restarted by
the supervisor (its command line, log and pid file). The router adds what the
front learns at run time: which replicas are healthy and how busy each is.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from llmops.local.experiment_routing import ShadowRoute, assign


class Launch(BaseModel):
    """How to start one replica again on its port: what the supervisor restarts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str] = Field(min_length=1)
    cwd: str
    log: str
    pid_file: str = Field(description="Where the live process's pid and start time are kept (JSON).")
    env: dict[str, str] = Field(default_factory=dict, description="Set on top of the front's environment.")


class Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(pattern=r"^[A-Za-z0-9.\-]+:\d+$", description="host:port of one replica.")
    pid: int | None = Field(default=None, description="Replica's pid, for per-process GPU memory.")
    launch: Launch | None = Field(default=None, description="Restart recipe; without it the replica is not supervised.")


class VariantRoute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    weight: int = Field(ge=0, le=100)
    upstreams: list[Upstream] = Field(min_length=1)
    tokenizer: str | None = Field(default=None, description="The artifact's folder: prompts are counted with it.")
    spares: list[Upstream] = Field(default_factory=list, description="Standby replicas the autoscaler may start.")


class Autoscale(BaseModel):
    """When the front starts a standby replica and stops one again (an HPA's behaviour, in seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_in_flight: int = Field(ge=1, description="Requests per replica (in flight + queued) to aim at.")
    up_after: float = Field(default=5.0, gt=0, description="Seconds above target before a scale-up.")
    down_after: float = Field(default=30.0, gt=0, description="Stabilisation window before a scale-down.")
    replica_memory_gib: float | None = Field(
        default=None, ge=0, description="Memory one more replica needs (sized): no scale-up without it free."
    )
    idle_seconds: float | None = Field(
        default=None, gt=0, description="Scale to zero: stop every replica of a variant idle this long."
    )
    cold_start_wait: float = Field(
        default=60.0, gt=0, description="Seconds a request waits for a parked variant to start, then 503."
    )


class RoutingTable(BaseModel):
    """What the front serves: written by the endpoint provider, read by the front."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="The serving name clients send as `model`.")
    owner: str = "llmops"
    max_new_tokens: int = Field(default=256, ge=1, description="Default and ceiling of max_tokens.")
    max_context: int | None = Field(default=None, ge=1, description="Prompt + generated tokens a request may use.")
    concurrency: int = Field(default=16, ge=1, description="Requests one replica generates at once.")
    queue: int | None = Field(default=None, ge=0, description="Requests waiting per replica (default: concurrency).")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Larger request bodies are refused (413).")
    autoscale: Autoscale | None = Field(default=None, description="Without it, the spares are never started.")
    variants: list[VariantRoute] = Field(default_factory=list)
    shadow: ShadowRoute | None = Field(default=None, description="Replicas that get a mirrored sample.")

    @property
    def admitted_per_replica(self) -> int:
        """In flight plus waiting on one replica; beyond it requests are shed (429)."""
        return self.concurrency + (self.concurrency if self.queue is None else self.queue)

    @classmethod
    def load(cls, path: Path) -> RoutingTable:
        return cls.model_validate_json(path.read_text())

    def write(self, path: Path) -> None:
        """Atomically: the front may read it at any moment."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)


@dataclass
class Router:
    """The current table plus what the front learned about each replica."""

    table: RoutingTable
    rng: random.Random = field(default_factory=random.Random)
    healthy: dict[str, bool] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)  # spares the autoscaler started and routes to
    parked: set[str] = field(default_factory=set)  # declared replicas stopped by scale to zero
    clock: Callable[[], float] = time.monotonic
    busy_since: dict[str, float] = field(default_factory=dict)  # replicas with requests in flight: since when
    busy_total: dict[str, float] = field(default_factory=dict)  # closed busy periods, seconds
    last_used: dict[str, float] = field(default_factory=dict)  # when a request last started or ended

    def swap(self, table: RoutingTable) -> None:
        """Replace the table in one assignment. New replicas start healthy: the provider
        lists a replica only after it answered a health check and a warm-up request."""
        spares = {u.address for v in table.variants for u in v.spares}
        self.active &= spares
        addresses = {u.address for v in table.variants for u in v.upstreams} | self.active
        self.healthy = {a: self.healthy.get(a, True) for a in addresses}
        self.table = table

    def members(self, variant: VariantRoute) -> list[Upstream]:
        """The replicas of a variant now: the declared ones and the started spares."""
        return [*variant.upstreams, *(u for u in variant.spares if u.address in self.active)]

    def start_spare(self, address: str) -> None:
        """Route to a started spare once its health checks pass."""
        self.active.add(address)
        self.healthy[address] = False

    def stop_spare(self, address: str) -> None:
        self.active.discard(address)
        self.healthy.pop(address, None)

    def park(self, address: str) -> None:
        """Scale to zero: not routed to nor probed until `unpark`."""
        self.parked.add(address)
        self.healthy[address] = False

    def unpark(self, address: str) -> None:
        """Routed to again once its health checks pass."""
        self.parked.discard(address)
        self.healthy[address] = False
        self.last_used[address] = self.clock()

    def idle_since(self, variant: VariantRoute, default: float) -> float:
        """When the variant's replicas last started or finished a request (`default` if never)."""
        return max((self.last_used.get(u.address, default) for u in self.members(variant)), default=default)

    def busy_seconds(self, address: str) -> float:
        """Seconds the replica had a request in flight, the current busy period included."""
        since = self.busy_since.get(address)
        return self.busy_total.get(address, 0.0) + (self.clock() - since if since is not None else 0.0)

    def routable(self) -> list[VariantRoute]:
        return [
            v for v in self.table.variants if v.weight > 0 and any(self.healthy.get(u.address) for u in self.members(v))
        ]

    def route_weights(self) -> dict[str, int]:
        """Each live version's weight as routed now: 0 until one of its replicas is routable."""
        routable = {v.version for v in self.routable()}
        return {v.version: v.weight if v.version in routable else 0 for v in self.table.variants}

    def pick(
        self, exclude: Collection[str] = (), key: str | None = None, version: str | None = None
    ) -> tuple[VariantRoute, Upstream] | None:
        """A variant by weight among those with a usable replica (sticky for a user `key`), then its
        least-busy replica. A pinned `version` (the smoke check's) is that variant whatever its weight."""
        table = self.table  # one consistent snapshot for the whole decision

        def usable(v: VariantRoute) -> list[Upstream]:
            return [u for u in self.members(v) if self.healthy.get(u.address) and u.address not in exclude]

        pinned = version is not None
        candidates = [v for v in table.variants if (v.version == version if pinned else v.weight > 0) and usable(v)]
        if not candidates:
            return None
        variant = (
            candidates[0]
            if pinned
            else (key and assign(key, candidates)) or self.rng.choices(candidates, [v.weight for v in candidates])[0]
        )
        upstream = min(usable(variant), key=lambda u: self.busy.get(u.address, 0))
        return variant, upstream

    def full(self, upstream: Upstream, cost: int = 1) -> bool:
        """No room for `cost` more sequences (a request's `n`); an idle replica always takes one request."""
        busy = self.busy.get(upstream.address, 0)
        return busy > 0 and busy + cost > self.table.admitted_per_replica

    def acquire(self, address: str, cost: int = 1) -> None:
        now = self.clock()
        if not self.busy.get(address):
            self.busy_since[address] = now
        self.busy[address] = self.busy.get(address, 0) + cost
        self.last_used[address] = now

    def release(self, address: str, cost: int = 1) -> None:
        now = self.clock()
        self.busy[address] = max(0, self.busy.get(address, cost) - cost)
        self.last_used[address] = now
        if not self.busy[address] and address in self.busy_since:
            self.busy_total[address] = self.busy_total.get(address, 0.0) + now - self.busy_since.pop(address)
