"""How long `llmops plan` takes on a big registry with a long history.

Builds (with `git fast-import`, in a few seconds) a repository of 500 registry
files and 1,000 commits: each commit edits a model's variants or environments,
every 50th a shared model config, every 100th core code. Then times the plan
of the whole history (every model changed on both sides), of a typical pull
request (the last 3 commits), and the `llmops plan --json` command end to end.
Goal: under 1 s for the whole history.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quick import quick  # noqa: E402
from llmops.plan import compute_plan  # noqa: E402

QUICK = quick()  # quick mode: 30 models, 40 commits, to prove the script runs
MODELS = 30 if QUICK else 500
COMMITS = 40 if QUICK else 1000
ENVS = ("dev", "staging", "prod")
CONFIGS = 20

MODEL_TEMPLATE = """\
# yaml-language-server: $schema=schema.json
# {name}: generated for the plan benchmark.
name: {name}
owner: team-{team}
description: Benchmark model {name}, revision {rev}.
task: text-generation
source:
  config: configs/shared-{config}.json
versions:
  v{rev}:
    huggingface:
      repo: org/{name}
      revision: "{sha}"
serving:
  runtime: vllm
  dtype: bf16
  max_context: 8192
  concurrency: 8
  min_replicas: 1
  max_replicas: 4
  variants:
    - version: v{rev}
      weight: 100
deployments:
{deployments}
monitoring:
  slo:
    p95_latency_ms: 1500
    error_rate: 0.01
compliance:
  licence: apache-2.0
  model_card: docs/model-cards/{name}.md
tags:
  cost-center: cc-{team}
"""


def model_text(i: int, rev: int, envs: tuple[str, ...]) -> str:
    deployments = "\n".join(f"  {env}: {{}}" for env in envs)
    return MODEL_TEMPLATE.format(
        name=f"model-{i:03d}",
        team=i % 7,
        rev=rev,
        sha=f"{rev:040x}",
        config=i % CONFIGS,
        deployments=deployments,
    )


def blob(path: str, text: str) -> str:
    data = text.encode()
    return f"M 100644 inline {path}\ndata {len(data)}\n{text}\n"


def build(repo: Path) -> None:
    rng = random.Random(7)
    envs = {i: tuple(e for e in ENVS if rng.random() < 0.6) or ("dev",) for i in range(MODELS)}
    revs = dict.fromkeys(range(MODELS), 1)
    out: list[str] = []
    when = 1_700_000_000
    for n in range(COMMITS):
        files: list[str] = []
        if n == 0:
            for stack in (*ENVS, "local"):
                files.append(blob(f"stacks/Pulumi.{stack}.yaml", f"config:\n  llmops:environment: {stack}\n"))
            files.extend(blob(f"models/configs/shared-{c}.json", '{"hidden_size": 4096}\n') for c in range(CONFIGS))
            files.extend(blob(f"models/model-{i:03d}.yaml", model_text(i, 1, envs[i])) for i in range(MODELS))
            files.append(blob("components/platform.py", "# v0\n"))
        elif n % 100 == 0:
            files.append(blob("components/platform.py", f"# v{n}\n"))
        elif n % 50 == 0:
            files.append(blob(f"models/configs/shared-{n % CONFIGS}.json", f'{{"hidden_size": {n}}}\n'))
        else:
            i = rng.randrange(MODELS)
            revs[i] += 1
            if rng.random() < 0.2:
                envs[i] = tuple(e for e in ENVS if rng.random() < 0.6) or ("dev",)
            files.append(blob(f"models/model-{i:03d}.yaml", model_text(i, revs[i], envs[i])))
        message = f"commit {n}"
        out.append(
            f"commit refs/heads/main\nmark :{n + 1}\n"
            f"committer Bench <bench@example.com> {when + n * 60} +0000\n"
            f"data {len(message)}\n{message}\n" + ("" if n == 0 else f"from :{n}\n") + "".join(files) + "\n"
        )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input="".join(out).encode(), check=True)


def timed(fn: object, runs: int = 5) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        start = time.perf_counter()
        build(repo)
        print(f"generated {MODELS} models, {COMMITS} commits in {time.perf_counter() - start:.1f} s")
        first = subprocess.run(
            ["git", "rev-list", "--max-parents=0", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()

        whole = compute_plan(repo, first)
        changed_models = sum(1 for c in whole.changes if c.path.startswith("models/model-"))
        med, best = timed(lambda: compute_plan(repo, first))
        print(
            f"plan, whole history ({len(whole.changes)} paths, {changed_models} models changed, "
            f"{len(whole.stacks)} stacks): median {med * 1000:.0f} ms, best {best * 1000:.0f} ms (goal < 1000 ms)"
        )
        med, best = timed(lambda: compute_plan(repo, "HEAD~3"))
        print(f"plan, last 3 commits: median {med * 1000:.0f} ms, best {best * 1000:.0f} ms")

        cli = [sys.executable, "-m", "llmops.cli", "plan", "--repo", str(repo), "--base", first, "--json"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        med, best = timed(lambda: subprocess.run(cli, env=env, capture_output=True, check=True), runs=3)
        print(
            f"`llmops plan --json`, whole history, process start and imports included: "
            f"median {med * 1000:.0f} ms, best {best * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
