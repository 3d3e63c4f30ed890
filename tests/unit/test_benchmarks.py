"""Every benchmark still runs: each script in benchmarks/, in quick mode, as `make bench` starts it.

Proves: each `benchmarks/bench_*.py` (a new one too: the list is the folder's) accepts
`--quick`, exits 0 and prints its comparison line (its measure beside its goal or
reference), so a schema or API change that breaks a benchmark fails here, not months later
in `make bench`. Benchmarks that start real processes (trainer, replicas, the engine,
lm-eval) also carry the `engine` marker, so `-m "not engine"` leaves them out.
Cannot prove: anything about the numbers: a quick run is the smallest size, on whatever
load the machine has (benchmarks print their figures; tests never time).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"

# benchmark -> text of its comparison line (measure beside goal or reference), and whether it needs real processes
EXPECTED: dict[str, tuple[str, bool]] = {
    "bench_cli.py": ("< 1.5 s", False),
    "bench_cold_start.py": ("(reference: the bounded wait", True),
    "bench_data.py": ("(goal < 10 s)", True),
    "bench_evaluation.py": ("goal < 1 s", True),
    "bench_experiments.py": ("front: added latency", False),
    "bench_fleet.py": ("(split layout; goal <= 1.25x)", True),
    "bench_mocks.py": ("goal: ms/model flat", False),
    "bench_plan.py": ("(goal < 1000 ms)", False),
    "bench_registry.py": ("(goal < 2 s)", False),
    "bench_review.py": ("PR open -> comment body ready", True),
    "bench_rightsize.py": ("after vs before", True),
    "bench_serving.py": ("(goal < +15 %)", True),
    "bench_sizing.py": ("(goal 100 %)", False),
    "bench_training.py": ("reference: the README", True),
}


def test_every_benchmark_is_listed() -> None:
    assert sorted(p.name for p in BENCHMARKS.glob("bench_*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize(
    "script",
    [pytest.param(n, marks=[pytest.mark.engine] if heavy else []) for n, (_, heavy) in EXPECTED.items()],
)
def test_a_benchmark_runs_in_quick_mode(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"], cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert EXPECTED[script][0] in done.stdout, f"{script} printed no comparison line:\n{done.stdout[-3000:]}"
