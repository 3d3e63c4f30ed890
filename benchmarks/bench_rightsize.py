"""Right-sizing, measured before and after: what a proposal saves once it is deployed.

On a throwaway local stack (a copy of the project, its own backend, ports and state),
tiny-chat serves an initialised checkpoint with 3 replicas. Two phases of the same light
load (one client, a request every `--gap` seconds, for `--minutes`):

1. before: `llmops cost --measured --json` over the phase's window;
   `llmops rightsize --write` edits the registry from that measurement; `pulumi up`
   deploys the proposal;
2. after: the same load, then `llmops cost --measured --json` over the new window.

Prints both measured rows side by side (replicas, tokens, replica hours, $ per 1M tokens,
utilisation, monthly cost at the measured replicas) and the proposal's evidence. All
through the installed console script in a clean environment, as a user runs it. The
price is the catalog's for the instance tiny-chat is sized to on AWS (the local target
has no price of its own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from llmops.local.train import initialised_checkpoint  # noqa: E402
from tests.support.project import Project, copy_project  # noqa: E402

MODEL, MODEL_DIR = "tiny-chat", "fixtures/tiny-chat-model"


def _serve_fixture(entry: dict[str, Any]) -> None:
    entry["versions"] = {"v1": {"local": MODEL_DIR}}
    entry.pop("training", None)
    entry["serving"] |= {"max_new_tokens": 8, "min_replicas": 3, "max_replicas": 3}
    entry["serving"]["variants"] = [{"version": "v1", "weight": 100}]
    entry["compliance"]["evaluation"] = []  # an untrained checkpoint fails every quality gate
    entry["monitoring"].pop("drift", None)
    entry["monitoring"]["capture"] = {"enabled": False}


def _llmops(project: Project, *args: str) -> str:
    env = {k: v for k, v in project.env.items() if k in ("HOME", "PATH", "PULUMI_HOME", "PULUMI_BACKEND_URL")}
    env |= {"LLMOPS_ROOT": str(project.root), "PULUMI_CONFIG_PASSPHRASE": "throwaway-test-passphrase"}
    exe = project.root / ".venv" / "bin" / "llmops"
    result = subprocess.run([str(exe), *args], cwd=project.root, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"llmops {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def _load(url: str, minutes: float, gap: float) -> int:
    """One client, a chat completion every `gap` seconds; the number answered (all must be)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
    answered, stop = 0, time.monotonic() + minutes * 60
    with httpx.Client(timeout=120) as http:
        while time.monotonic() < stop:
            r = http.post(f"{url}/v1/chat/completions", json=body)
            if r.status_code != 200:
                raise SystemExit(f"request failed: {r.status_code} {r.text[:300]}")
            answered += 1
            time.sleep(gap)
    return answered


def _measured(project: Project, stack: str, prometheus: str, window: str) -> dict[str, Any]:
    out = _llmops(
        project, "cost", "--measured", "--stack", stack, "--window", window, "--prometheus-url", prometheus, "--json"
    )
    return next(v for v in json.loads(out)["versions"] if v["model"] == MODEL and v["version"] == "v1")


def _wait_scraped(prometheus: str, answered_total: int) -> None:
    query = f'sum(llmops_requests_total{{model="{MODEL}",code="200"}})'
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10).json()["data"]["result"]
        if rows and float(rows[0]["value"][1]) >= answered_total:
            return
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="each phase's load (and window)")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between requests")
    parser.add_argument("--quick", action="store_true", help="phases of a minute and a half (to check it runs)")
    args = parser.parse_args()
    if args.quick:
        args.minutes = 1.5
    window = f"{int(args.minutes * 60)}s"
    with tempfile.TemporaryDirectory(prefix="bench-rightsize-") as tmp:
        project = copy_project(Path(tmp) / "project")
        initialised_checkpoint(project.root, project.root / MODEL_DIR)
        project.edit_model(MODEL, _serve_fixture)
        stack = project.local_stack("rightsize", healthTimeoutSeconds=180)
        try:
            project.pulumi("up", "--yes", "--skip-preview", stack=stack)
            outputs = json.loads(project.pulumi("stack", "output", "--json", stack=stack).stdout)
            url, prometheus = outputs["endpoints"][MODEL]["url"], outputs["prometheusUrl"]

            total = _load(url, args.minutes, args.gap)
            _wait_scraped(prometheus, total)
            before = _measured(project, stack, prometheus, window)
            rs_args = (
                "rightsize",
                "--stack",
                stack,
                "--window",
                window,
                "--min-minutes",
                str(max(1, int(args.minutes) - 1)),
            )
            rs_args += ("--prometheus-url", prometheus)
            proposal = next(
                p for p in json.loads(_llmops(project, *rs_args, "--json"))["proposals"] if p["model"] == MODEL
            )
            _llmops(project, *rs_args, "--write")
            t = time.perf_counter()
            project.pulumi("up", "--yes", "--skip-preview", stack=stack)
            redeploy = time.perf_counter() - t

            answered = _load(url, args.minutes, args.gap)
            _wait_scraped(prometheus, total + answered)
            after = _measured(project, stack, prometheus, window)
        finally:
            project.pulumi("destroy", "--yes", "--skip-preview", stack=stack, check=False)

    print(f"proposal: {proposal['current']} -> {proposal['proposed']}; evidence {proposal['evidence']}")
    print(
        f"redeploy of the proposal: {redeploy:.1f} s; each phase: {args.minutes:g} min, a request every {args.gap:g} s"
    )
    rows = [
        ("replicas (measured mean)", "replicas", "{:.2f}"),
        ("completion tokens", "completion_tokens", "{:.0f}"),
        ("replica hours", "replica_hours", "{:.3f}"),
        ("$ per 1M tokens", "usd_per_million_tokens", "{:,.2f}"),
        ("utilisation", "utilisation", "{:.1%}"),
        ("monthly at measured replicas", "monthly_usd", "${:,.0f}"),
    ]
    print(f"{'':28}{'before':>14}{'after':>14}")
    for label, key, fmt in rows:
        cells = [fmt.format(r[key]) if r.get(key) is not None else "n/a" for r in (before, after)]
        print(f"{label:28}{cells[0]:>14}{cells[1]:>14}")
    ratio = after["usd_per_million_tokens"] / before["usd_per_million_tokens"]
    print(f"priced as {before['instance_type']} at ${before['hourly_usd']}/h ({before.get('priced_as') or 'its own'})")
    print(f"$ per 1M tokens, after vs before: {ratio:.2f}x")


if __name__ == "__main__":
    main()
