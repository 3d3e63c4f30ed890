"""What a window of serving measured for one model version; None where nothing was measured."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in `7d`, `10m`, `2h`, `90s` or `90`; ValueError naming the text otherwise."""
    match = _DURATION.match(text.strip())
    seconds = float(match.group(1)) * _UNIT[match.group(2)] if match else 0.0
    if not match or seconds < 60:
        raise ValueError(f"{text!r} is not a duration of at least a minute (e.g. 10m, 24h, 7d)")
    return seconds


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation, as numpy's default; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class VersionUsage:
    """One version's serving over a window. Counts are None when the source has no such series:
    unmeasured is not zero."""

    model: str
    version: str
    window_seconds: float
    source: str
    requests: float = 0.0
    shed: float = 0.0  # requests refused at capacity (429): load the replicas could not take
    prompt_tokens: float | None = None
    completion_tokens: float | None = None
    replica_seconds: float | None = None  # replica time held (what a bill counts)
    busy_seconds: float | None = None  # replica time with a request in flight (None: not measured)
    served_minutes: int = 0  # minutes with at least one replica held
    concurrency: list[float] = field(default_factory=list)  # mean requests in flight, per served minute
    replicas: list[float] = field(default_factory=list)  # replicas held, per served minute
    p95_latency_s: float | None = None
    gpu_utilisation: float | None = None  # mean GPU use of its replicas' GPUs, 0..1 (None: no GPU series)
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> float | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0.0) + (self.completion_tokens or 0.0)

    @property
    def replica_hours(self) -> float | None:
        return None if self.replica_seconds is None else self.replica_seconds / 3600

    @property
    def mean_replicas(self) -> float | None:
        """Replicas held while served: the median minute's (a minute served in part, at a deploy or a
        scale event, does not drag it down), else replica time over served minutes."""
        if self.replicas:
            return percentile(self.replicas, 0.5)
        if self.replica_seconds is None or not self.served_minutes:
            return None
        return self.replica_seconds / (self.served_minutes * 60)

    @property
    def utilisation(self) -> float | None:
        if self.busy_seconds is None or not self.replica_seconds:
            return None
        return min(1.0, self.busy_seconds / self.replica_seconds)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(tokens=self.tokens, mean_replicas=self.mean_replicas, utilisation=self.utilisation)
        return out
