"""The local target's experiment source against a real Prometheus.

The front end's series (the metrics contract) are written as OpenMetrics with
timestamps and served by Debian's `prometheus` (tests/support/prometheus.py); the
source then queries it over the HTTP API.

Proves: the queries select one model's generation routes and sum by version; counts are
exact (a series born inside the window counts from 0, a counter reset falls back to
increase()); errors, the latency histogram and feedback come back per variant; a version with no
series reads as zero (and the verdict is inconclusive, not a pass); a canary that errs
more is a roll back through the whole path; an unreachable Prometheus or a bad query
is a SourceError. Cannot prove: that the live front end exports these series (the
front's unit tests do).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llmops.experiments import prometheus as prometheus_source
from llmops.experiments.data import ExperimentData
from llmops.experiments.prometheus import PrometheusSource, SourceError
from llmops.experiments.stats import Plan, analyse
from llmops.registry import Variant
from tests.support.prometheus import free_port, serve_openmetrics

pytestmark = pytest.mark.unit

STEP, STEPS = 15, 41  # ten minutes of samples, 15 s apart
BOUNDS = ("0.05", "0.1", "0.25", "+Inf")
ROUTE = "/v1/chat/completions"


def openmetrics(end: int) -> str:
    """Per step: v1 serves 18 requests (0 errors), v2 2 requests (1 error); a 3rd model is noise."""
    lines: list[str] = []
    families = {
        "llmops_requests": "counter",
        "llmops_request_errors": "counter",
        "llmops_request_duration_seconds": "histogram",
        "llmops_feedback": "counter",
        "llmops_feedback_positive": "counter",
        "llmops_route_weight": "gauge",
    }
    samples: dict[str, list[str]] = {name: [] for name in families}
    for i in range(STEPS):
        ts = end - (STEPS - 1 - i) * STEP
        for model, version, per_step, errors, fast in (
            ("chat", "v1", 18, 0, 16),
            ("chat", "v2", 2, 1, 1),
            ("other", "v2", 50, 50, 0),
        ):
            base = f'model="{model}",version="{version}",route="{ROUTE}"'
            n, e = per_step * i, errors * i
            samples["llmops_requests"].append(f'llmops_requests_total{{{base},code="200"}} {n - e} {ts}')
            samples["llmops_requests"].append(f'llmops_requests_total{{{base},code="503"}} {e} {ts}')
            samples["llmops_request_errors"].append(f"llmops_request_errors_total{{{base}}} {e} {ts}")
            cum = {"0.05": fast * i, "0.1": per_step * i, "0.25": per_step * i, "+Inf": per_step * i}
            for le in BOUNDS:
                samples["llmops_request_duration_seconds"].append(
                    f'llmops_request_duration_seconds_bucket{{{base},le="{le}"}} {cum[le]} {ts}'
                )
            samples["llmops_request_duration_seconds"].append(
                f"llmops_request_duration_seconds_count{{{base}}} {n} {ts}"
            )
            samples["llmops_request_duration_seconds"].append(
                f"llmops_request_duration_seconds_sum{{{base}}} {0.05 * n} {ts}"
            )
            fb = f'model="{model}",version="{version}"'
            samples["llmops_feedback"].append(f"llmops_feedback_total{{{fb}}} {i} {ts}")
            samples["llmops_feedback_positive"].append(f"llmops_feedback_positive_total{{{fb}}} {i // 2} {ts}")
        # v4 is born mid-window having already counted 5; v5's counter resets (a front restart).
        born = f'model="chat",version="v4",route="{ROUTE}",code="200"'
        if i >= 20:
            samples["llmops_requests"].append(f"llmops_requests_total{{{born}}} {5 + 2 * (i - 20)} {ts}")
        reset = f'model="chat",version="v5",route="{ROUTE}",code="200"'
        samples["llmops_requests"].append(f"llmops_requests_total{{{reset}}} {10 * (i if i < 20 else i - 20)} {ts}")
        # "walk": v1 serves alone (20 a step) until its canary v6 becomes routable at step 20, then 16 + 4;
        # at step 30 v6 misses one health check (a blip under load: the window must not restart there).
        routed = i >= 20
        for version, weight, per_step in (("v1", 80 if routed else 100, 16 if routed else 20), ("v6", 20, 4)):
            n = per_step * (i - 20) + (400 if version == "v1" else 0) if routed else (20 * i if version == "v1" else 0)
            labels = f'model="walk",version="{version}"'
            samples["llmops_route_weight"].append(
                f"llmops_route_weight{{{labels}}} {weight if (routed and i != 30) or version == 'v1' else 0} {ts}"
            )
            samples["llmops_requests"].append(f'llmops_requests_total{{{labels},route="{ROUTE}",code="200"}} {n} {ts}')
        # "again": 80/20 for steps 0-9, then v1 alone at 100 (the canary rolled back), then 80/20
        # committed again from step 20: only the last regime is this experiment.
        split = i < 10 or i >= 20
        counted = {
            "v1": 16 * min(i, 10) + 20 * max(0, min(i, 20) - 10) + 16 * max(0, i - 20),
            "v2": 4 * min(i, 10) + 4 * max(0, i - 20),
        }
        for version, weight in (("v1", 80 if split else 100), ("v2", 20 if split else 0)):
            labels = f'model="again",version="{version}"'
            samples["llmops_route_weight"].append(f"llmops_route_weight{{{labels}}} {weight} {ts}")
            samples["llmops_requests"].append(
                f'llmops_requests_total{{{labels},route="{ROUTE}",code="200"}} {counted[version]} {ts}'
            )
    for name, kind in families.items():
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(samples[name])
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    end = int(time.time()) // 60 * 60 - 1800
    with serve_openmetrics(openmetrics(end), tmp_path_factory.mktemp("prom")) as url:
        yield url, end


def collect(url: str, end: int, variants: list[Variant]) -> ExperimentData:
    return PrometheusSource(url).collect("chat", "local", variants, end - (STEPS - 1) * STEP, end)


def test_per_variant_counts_latency_and_feedback(prometheus: tuple[str, int]) -> None:
    url, end = prometheus
    data = collect(url, end, [Variant(version="v1", weight=90), Variant(version="v2", weight=10)])
    v1, v2 = data.variants
    # 40 steps of increase over the window, for this model only (the noise model is excluded).
    assert (v1.requests, v1.errors) == (720, 0)
    assert (v2.requests, v2.errors) == (80, 40)
    assert (v1.feedback_total, v1.feedback_positive) == (40, 20)
    assert v1.latency is not None and v1.latency_quantile(0.5) == pytest.approx(0.05 * 360 / 640, rel=0.02)
    a = analyse(data, Plan(alpha=0.05, looks=10, min_samples=50, metrics=("error_rate", "latency")))
    assert a.verdict == "rollback"
    assert a.canaries[0].metrics[0].verdict == "rollback" and a.canaries[0].metrics[1].verdict == "rollback"


def test_counts_are_exact_for_a_series_born_in_the_window_and_survive_a_reset(prometheus: tuple[str, int]) -> None:
    url, end = prometheus
    data = collect(url, end, [Variant(version="v4", weight=50), Variant(version="v5", weight=50)])
    # v4: everything it counted, including the 5 before its first sample (increase() misses
    # those and reports about 41). v5: 190 before the reset + 200 after it.
    assert [v.requests for v in data.variants] == [45, 390]


def test_a_version_without_series_reads_as_no_data(prometheus: tuple[str, int]) -> None:
    url, end = prometheus
    data = collect(url, end, [Variant(version="v1", weight=90), Variant(version="v3", weight=10)])
    assert data.variants[1].requests == 0 and data.variants[1].latency is None
    assert analyse(data, Plan(min_samples=50)).verdict == "inconclusive"


def test_the_window_starts_when_the_committed_split_was_routed(prometheus: tuple[str, int]) -> None:
    url, end = prometheus
    start = end - (STEPS - 1) * STEP
    data = PrometheusSource(url).collect(
        "walk", "local", [Variant(version="v1", weight=80), Variant(version="v6", weight=20)], start, end
    )
    # From step 20, when the front first routed 80/20: v1's 400 requests served alone are not
    # counted (they would make the split 720/80 and fail the sample-ratio check).
    assert data.start == start + 20 * STEP and data.note == ""
    assert [v.requests for v in data.variants] == [320, 80]
    assert analyse(data, Plan(min_samples=50)).srm.mismatch is False


def test_the_window_starts_after_the_last_other_split(prometheus: tuple[str, int]) -> None:
    url, end = prometheus
    start = end - (STEPS - 1) * STEP
    data = PrometheusSource(url).collect(
        "again", "local", [Variant(version="v1", weight=80), Variant(version="v2", weight=20)], start, end
    )
    # The same 80/20 was routed at the window's start, then v1 alone: only the split routed again
    # from step 20 counts (from step 0 it would be 680/120).
    assert data.start == start + 20 * STEP
    assert [v.requests for v in data.variants] == [320, 80]


def test_a_window_between_whole_seconds_starts_at_its_scrape(prometheus: tuple[str, int]) -> None:
    """Read from a fractional `now` (as every caller's is), the start value is the one scraped when
    the split was first routed, not the one a second before it."""
    url, end = prometheus
    start = end - (STEPS - 1) * STEP
    data = PrometheusSource(url).collect(
        "walk", "local", [Variant(version="v1", weight=80), Variant(version="v6", weight=20)], start + 0.4, end + 0.7
    )
    assert data.start == pytest.approx(start + 20 * STEP + 0.4)
    assert [v.requests for v in data.variants] == [320, 80]  # from a second earlier: 340/80


def test_a_long_window_still_starts_at_the_scrape(prometheus: tuple[str, int]) -> None:
    """Eleven hours back, the gauge is read 5 s apart (Prometheus' point limit); the start is then
    looked up again scrape by scrape."""
    url, end = prometheus
    data = PrometheusSource(url).collect(
        "walk", "local", [Variant(version="v1", weight=80), Variant(version="v6", weight=20)], end - 40_001, end
    )
    assert data.start == end - (STEPS - 1 - 20) * STEP
    assert [v.requests for v in data.variants] == [320, 80]


def test_a_caller_whose_clock_is_ahead_reads_the_same_window(
    prometheus: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit date and `now` from a clock 10 minutes ahead of Prometheus' (a sandbox, a remote
    server): read as given, the window would start after the traffic it must count."""
    url, end = prometheus
    skew, start = 600.0, end - (STEPS - 1) * STEP
    # `now` a second after the last scrape, as a caller's always is: the measured offset has a few
    # milliseconds of jitter, and a window ending exactly on the last sample could miss it.
    now = end + skew + 1
    real_time = time.time
    monkeypatch.setattr(prometheus_source.time, "time", lambda: real_time() + skew)
    data = PrometheusSource(url).collect(
        "walk", "local", [Variant(version="v1", weight=80), Variant(version="v6", weight=20)], start + skew, now
    )
    assert data.start == pytest.approx(start + 20 * STEP + skew, abs=2)  # one grid step of 1 s
    assert [v.requests for v in data.variants] == [320, 80]


def test_a_split_the_front_does_not_route_counts_nothing(prometheus: tuple[str, int]) -> None:
    url, end = prometheus
    data = PrometheusSource(url).collect(
        "walk", "local", [Variant(version="v1", weight=50), Variant(version="v6", weight=50)], end - 300, end
    )
    assert [v.requests for v in data.variants] == [0, 0] and data.start == data.end
    assert "does not route the committed split" in data.note
    assert analyse(data, Plan(min_samples=50)).verdict == "inconclusive"


def test_errors_are_source_errors(prometheus: tuple[str, int]) -> None:
    url, _ = prometheus
    with pytest.raises(SourceError, match="rejected"):
        PrometheusSource(url).query("sum(", 0)
    with pytest.raises(SourceError, match="unreachable"):
        PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=1).query("up", 0)
