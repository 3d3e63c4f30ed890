"""Quick mode, shared by every benchmark: the smallest size, to prove the script still runs.

`--quick` on the command line, or LLMOPS_BENCH_QUICK=1 in the environment (then child
processes a benchmark starts see it too). A quick run prints the same comparison lines
with numbers that are not the benchmark's figures; tests/unit/test_benchmarks.py runs
every benchmark this way, so none can rot unseen.
"""

from __future__ import annotations

import os
import sys

ENV = "LLMOPS_BENCH_QUICK"


def quick() -> bool:
    """Whether this run is quick; takes `--quick` out of sys.argv so each script parses the rest as before."""
    if "--quick" in sys.argv:
        sys.argv.remove("--quick")
        os.environ[ENV] = "1"
    return os.environ.get(ENV, "") == "1"
