"""The front door: `llmops` as a user's shell starts it, beside its goals.

Runs the installed console script (`.venv/bin/llmops`) in a fresh environment (HOME and
PATH=/usr/bin:/bin only: no scripts/env.sh, no HF_HUB_OFFLINE) from the repository root,
with HF_ENDPOINT at a closed local port, where a machine with internet would reach the
Hugging Face hub: a command that tried the network would fail or stall there, not succeed.
Prints the median wall time of each command beside its goal:

- `llmops --help`                       goal < 0.5 s
- `llmops registry validate`, warm       goal < 1.5 s (the shipped registry; sizing results kept)
- `llmops registry validate`, cold       (empty sizing caches: transformers and torch imported)
- `llmops plan --base HEAD~1 --json`     (no goal; reported)

`--baseline CHECKOUT` runs the same commands once with another checkout's console script
(e.g. the main branch before a change), from that checkout, side by side.

    .venv/bin/python benchmarks/bench_cli.py [--quick] [--runs 5] [--baseline /path/to/checkout]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quick import quick  # noqa: E402

GOALS = {"help": 0.5, "validate (warm)": 1.5}
COMMANDS = {
    "help": ["--help"],
    "validate (warm)": ["registry", "validate"],
    "validate (cold)": ["registry", "validate"],
    "plan --json": ["plan", "--base", "HEAD~1", "--json"],
}


def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(checkout: Path, args: list[str], env: dict[str, str], timeout: float) -> tuple[float, int]:
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [str(checkout / ".venv" / "bin" / "llmops"), *args],
            cwd=checkout,
            env=env,
            capture_output=True,
            timeout=timeout,
        )
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = 124
    return time.perf_counter() - start, code


def measure(checkout: Path, runs: int, timeout: float) -> dict[str, tuple[float, int]]:
    base = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin"}
    base["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    out: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, args in COMMANDS.items():
            env = dict(base)
            if label == "validate (cold)":
                times, codes = [], []
                for i in range(runs):  # each run with its own empty sizing cache
                    env["LLMOPS_SIZING_CACHE"] = str(Path(tmp) / f"cold-{i}" / "parameters.json")
                    seconds, code = run(checkout, args, env, timeout)
                    times.append(seconds)
                    codes.append(code)
                out[label] = (statistics.median(times), max(codes))
                continue
            if label == "validate (warm)":
                run(checkout, args, env, timeout)  # fills the checkout's kept sizing results, if it keeps any
            results = [run(checkout, args, env, timeout) for _ in range(runs)]
            out[label] = (statistics.median(t for t, _ in results), max(c for _, c in results))
    return out


def main() -> int:
    small = quick()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1 if small else 5, help="runs per command (median)")
    parser.add_argument("--baseline", type=Path, help="another checkout with its own .venv, measured once per command")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per command")
    args = parser.parse_args()

    print(f"bench_cli: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; HF_ENDPOINT at a closed port")
    here = measure(ROOT, args.runs, args.timeout)
    before = measure(args.baseline.resolve(), 1, args.timeout) if args.baseline else None
    header = f"{'command':<20} {'measured':>10} {'goal':>8}"
    print(header + (f" {'baseline':>12}" if before else "") + "  exit")
    for label, (seconds, code) in here.items():
        goal = GOALS.get(label)
        verdict = "" if goal is None else ("ok" if seconds < goal and code == 0 else "MISSED")
        row = f"{label:<20} {seconds:>9.2f}s {('< ' + format(goal, 'g') + ' s') if goal else '-':>8}"
        if before:
            b_seconds, b_code = before[label]
            row += f" {b_seconds:>11.2f}s"
            row += f"  {code} (baseline {b_code})"
        else:
            row += f"  {code}"
        print(f"{row}  {verdict}".rstrip())
    return 0 if all(code == 0 for _, code in here.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
