"""What a metrics source returns for one variant over the analysed window.

Latency comes in one of two shapes, as the sources expose it: a histogram of
request durations (Prometheus: `llmops_request_duration_seconds_bucket`) or
per-period mean latencies with their request counts (CloudWatch `ModelLatency`
Average and SampleCount per period). The statistics pick the test that fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Histogram:
    """Non-cumulative counts per bucket; `bounds[i]` is bucket i's upper bound in seconds (the last is inf)."""

    bounds: tuple[float, ...]
    counts: FloatArray

    @classmethod
    def from_cumulative(cls, cumulative: dict[float, float]) -> Histogram:
        bounds = tuple(sorted(cumulative))
        cum = np.maximum.accumulate(np.array([cumulative[b] for b in bounds], dtype=np.float64))
        return cls(bounds, np.diff(cum, prepend=0.0))

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket, as Prometheus' histogram_quantile does."""
        total = self.total
        if total <= 0:
            return None
        cum = np.cumsum(self.counts)
        rank = q * total
        i = int(np.searchsorted(cum, rank, side="left"))
        i = min(i, len(self.bounds) - 1)
        upper = self.bounds[i]
        lower = self.bounds[i - 1] if i > 0 else 0.0
        if np.isinf(upper):
            return lower  # above the highest finite bound: its lower edge, like Prometheus
        below = cum[i - 1] if i > 0 else 0.0
        inside = self.counts[i]
        return float(lower + (upper - lower) * ((rank - below) / inside if inside > 0 else 1.0))


@dataclass(frozen=True)
class PeriodMeans:
    """Mean latency (seconds) and request count of each period with traffic."""

    means: FloatArray
    counts: FloatArray
    p50: float | None = None
    p95: float | None = None


@dataclass(frozen=True)
class VariantData:
    version: str
    weight: int
    requests: int = 0
    errors: int = 0
    feedback_total: int = 0
    feedback_positive: int = 0
    latency: Histogram | PeriodMeans | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def positive_rate(self) -> float | None:
        return self.feedback_positive / self.feedback_total if self.feedback_total else None

    def latency_quantile(self, q: float) -> float | None:
        """Seconds; p50/p95 from the histogram, or as the source reported them."""
        if isinstance(self.latency, Histogram):
            return self.latency.quantile(q)
        if isinstance(self.latency, PeriodMeans):
            return self.latency.p50 if q == 0.5 else self.latency.p95 if q == 0.95 else None
        return None


@dataclass(frozen=True)
class ExperimentData:
    """Every variant of one model in one environment, over [start, end] (unix seconds)."""

    model: str
    environment: str
    start: float
    end: float
    variants: list[VariantData] = field(default_factory=list)
    source: str = ""
    note: str = ""  # why the window is shorter than asked, or empty
