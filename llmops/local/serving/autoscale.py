"""Replicas between min_replicas and max_replicas following in-flight load, like a HorizontalPodAutoscaler.

The endpoint provider starts `min_replicas` per version and hands the front the
recipes of the rest as standby replicas (ports reserved, processes not started).
Each health tick the front gives the autoscaler each variant's load (requests in
flight or queued per routable replica):

- above `target_in_flight` for `up_after` seconds in a row: start one standby;
- low enough that one replica fewer would stay at half the target, for
  `down_after` seconds in a row (the stabilisation window): stop the newest
  started one, first taking it out of routing and letting its requests finish.

A step up also needs the machine's room for one more replica (its sized memory
free in RAM, and on the largest free GPU where there are NVIDIA GPUs), as a pod
stays Pending without a node that fits; a step refused for that is counted in
`llmops_autoscale_blocked_total`.

Pulumi state holds the bounds and the reserved recipes, never the live count, so
a scale event is never drift (as `ignoreChanges` keeps an HPA's replica count out
of a Kubernetes diff).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import psutil

from llmops.local.serving.metrics import nvidia_smi
from llmops.local.serving.routing import Autoscale

UP, DOWN, HOLD = 1, -1, 0


@dataclass
class _Since:
    above: float | None = None
    below: float | None = None


@dataclass
class Autoscaler:
    policy: Autoscale
    since: dict[str, _Since] = field(default_factory=dict)

    def decide(self, version: str, in_flight: int, replicas: int, spares_left: int, started: int, now: float) -> int:
        """UP, DOWN or HOLD for one variant: `replicas` routable, `spares_left` still standby,
        `started` spares running (only those may be stopped)."""
        s = self.since.setdefault(version, _Since())
        target = self.policy.target_in_flight
        above = replicas > 0 and in_flight > target * replicas
        below = replicas > 1 and in_flight <= math.floor(target * (replicas - 1) / 2)
        s.above = (s.above if s.above is not None else now) if above else None
        s.below = (s.below if s.below is not None else now) if below else None
        if s.above is not None and spares_left > 0 and now - s.above >= self.policy.up_after:
            s.above = None  # the next step up needs its own sustained load
            return UP
        if s.below is not None and started > 0 and now - s.below >= self.policy.down_after:
            s.below = None
            return DOWN
        return HOLD


def room_for(need_gib: float | None) -> str | None:
    """None when the machine can hold one more replica needing `need_gib`, else why not."""
    if not need_gib:
        return None
    free = psutil.virtual_memory().available / 2**30
    if free < need_gib:
        return f"{free:.1f} GiB of memory free, a replica needs {need_gib:.1f} GiB"
    gpu = _largest_free_gpu_gib()
    if gpu is not None and gpu < need_gib:
        return f"{gpu:.1f} GiB free on the emptiest GPU, a replica needs {need_gib:.1f} GiB"
    return None


def _largest_free_gpu_gib() -> float | None:
    """The most free memory on one NVIDIA GPU, or None without NVIDIA GPUs."""
    out = nvidia_smi("--query-gpu=memory.free")
    free = [float(line) / 1024 for line in (out or "").split() if line.replace(".", "", 1).isdigit()]
    return max(free) if free else None
