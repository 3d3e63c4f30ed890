"""What a one-model change costs as the fleet grows: one stack per environment against a platform
stack plus one stack per model, on the project's own engine (`bin/pulumi`) and a file backend.

The program stands in for the project's: each model is a component with 13 child components
(endpoint, its config and model, two roles, a training pipeline, its package group, an
evaluation, a drift monitor, three alarms and a dashboard panel), each with about 300 bytes
of outputs, 14 resources a model as in `prod` today; the environment's shared part (cluster,
node pools, Prometheus, alert topic) is 8 more. Components call no cloud API, so the figures
are the engine's and the backend's own cost, which is what grows with the fleet: a self-managed
backend rewrites the whole checkpoint at every step. What a real update adds (provider calls,
AWS waits) is the same in both layouts for the one model changed.

Two layouts, side by side at each size:
- monolith: one stack holding the shared part and every model (today's layout);
- split: a platform stack with the shared part, and a stack per model that reads the
  platform's outputs through `pulumi.StackReference`.

Per size it measures (a) `llmops plan` of a one-model change (the installed console script,
on a git repository of that many registry files deployed to dev, staging and prod, whose
stack files are single or split) and the stacks it names, (c) creating the environment from
nothing (the split one stack after another, as a single CI runner would) and (b) `preview` +
`up` of a one-model change (one model's version bumped: that model's 14 resources update), and
the state each layout keeps.

Goal: in the split layout a one-model change at the largest size costs at most 1.25x what it
costs at the smallest, and creation grows linearly (seconds per model flat).

At 500 models the monolith's creation alone takes over an hour on 2 cores (it is quadratic);
the whole default run takes about two.

    .venv/bin/python benchmarks/bench_fleet.py [--quick] [sizes...]   (default 5 50 500; quick: 1, 2, 3)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quick import quick  # noqa: E402
from llmops.engine import engine_env, pulumi_binary  # noqa: E402

QUICK = quick()
SIZES = sorted(int(a) for a in sys.argv[1:]) or ([1, 2, 3] if QUICK else [5, 50, 500])
GOAL = 1.25
PROJECT = "fleet"

PROGRAM = '''\
"""Stand-in for the LLMOps program: components shaped like the project's, no cloud calls."""
import pulumi

CHILDREN = ("endpoint", "endpoint-config", "model", "execution-role", "pipeline-role", "pipeline",
            "package-group", "evaluation", "drift", "alarm-latency", "alarm-errors", "alarm-drift", "panel")
SHARED = ("cluster", "system-pool", "gpu-pool-a10g", "gpu-pool-l4", "prometheus", "alert-topic", "data-key")


def facts(kind, name, revision=0):
    # About 300 bytes of outputs, as the project's resources keep (ARNs, names, tags).
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/llmops-{name}-{revision:04d}"
    return {"arn": arn, "name": f"llmops-{name}", "revision": revision,
            "tags": {"llmops:model": name, "llmops:team": "team-" + name[-2:], "llmops:environment": "prod",
                     "llmops:managed-by": "pulumi", "llmops:kind": kind, "llmops:dataset": name + "@1"},
            "url": f"https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/llmops-{name}/invocations"}


class Part(pulumi.ComponentResource):
    def __init__(self, kind, name, revision, cluster, opts=None):
        props = facts(kind, name, revision)
        super().__init__(f"fleet:{kind}:Part", f"{name}-{kind}", {**props, "cluster": cluster}, opts)
        self.register_outputs(props)


class Model(pulumi.ComponentResource):
    def __init__(self, name, revision, cluster):
        super().__init__("fleet:model:Model", name, {"revision": revision})
        for kind in CHILDREN:
            Part(kind, name, revision, cluster, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


class Shared(pulumi.ComponentResource):
    def __init__(self, env):
        super().__init__("fleet:platform:Shared", env, {})
        for kind in SHARED:
            Part(kind, env, 0, "", pulumi.ResourceOptions(parent=self))
        self.cluster = f"llmops-{env}"
        self.register_outputs({"cluster": self.cluster})


config = pulumi.Config("fleet")
layout, count = config.require("layout"), config.require_int("models")
changed, revision = config.get_int("changed"), config.get_int("revision") or 0


def model(i, cluster):
    Model(f"model-{i:03d}", revision if i == changed else 0, cluster)


if layout in ("monolith", "platform"):
    shared = Shared("prod")
    pulumi.export("cluster", shared.cluster)
if layout == "monolith":
    for i in range(count):
        model(i, shared.cluster)
if layout == "model":
    platform = pulumi.StackReference(f"organization/{pulumi.get_project()}/prod")
    model(config.require_int("index"), platform.require_output("cluster"))
'''


@dataclass
class Planned:
    seconds: float
    stacks: list[str]


def plan(root: Path, n: int, layout: str) -> Planned:
    """(a) `llmops plan --json` of a one-model change on a registry of `n` models, as CI runs it."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "HOME": str(root)}  # fmt: skip

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout

    root.mkdir(parents=True)
    git("init", "-q", "-b", "main")
    for stack in ("dev", "staging", "prod"):
        split = "  llmops:layout: split\n" if layout == "split" else ""
        config = f"config:\n  llmops:target: aws\n  llmops:environment: {stack}\n{split}"
        (root / "stacks").mkdir(exist_ok=True)
        (root / "stacks" / f"Pulumi.{stack}.yaml").write_text(config)
    (root / "models").mkdir()
    for i in range(n):
        (root / "models" / f"model-{i:03d}.yaml").write_text(_entry(f"model-{i:03d}", "v1"))
    git("add", "-A")
    git("commit", "-qm", "fleet")
    base = git("rev-parse", "HEAD").strip()
    (root / "models" / "model-000.yaml").write_text(_entry("model-000", "v2"))
    git("commit", "-qam", "one model")
    t = time.perf_counter()
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "llmops"), "plan", "--base", base, "--repo", str(root), "--json"],
        capture_output=True, text=True, timeout=600, env={"HOME": str(root), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"llmops plan failed:\n{done.stderr[-2000:]}")
    return Planned(seconds, [s["stack"] for s in json.loads(done.stdout)["stacks"]])


def _entry(name: str, revision: str) -> str:
    """A registry entry with the fields `llmops plan` reads, the shape real files have."""
    return (
        f"name: {name}\nowner: platform-ml\ntask: text-generation\nsource: {{config: configs/{name}.json}}\n"
        f"versions: {{v1: {{huggingface: {{repo: org/{name}, revision: {revision}}}}}}}\n"
        "serving: {runtime: vllm, max_context: 4096, variants: [{version: v1, weight: 100}]}\n"
        "deployments: {dev: {}, staging: {}, prod: {}}\n"
    )


@dataclass
class Figures:
    create_s: float
    change_s: float
    state_bytes: int
    stacks: int


class Fleet:
    """A throwaway project and file backend for one layout and size."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True)
        (root / "__main__.py").write_text(PROGRAM)
        (root / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
        self.backend = root / ".state"
        self.backend.mkdir()
        self.env = engine_env(ROOT, backend_url=f"file://{self.backend}")
        self.env["PULUMI_CONFIG_PASSPHRASE"] = "benchmark"
        self.pulumi_bin = pulumi_binary(ROOT)

    def pulumi(self, *args: str, stack: str) -> None:
        cmd = [self.pulumi_bin, *args, "--stack", stack, "--non-interactive"]
        done = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=7200)
        if done.returncode != 0:
            raise SystemExit(
                f"pulumi {' '.join(args)} --stack {stack} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
            )

    def create(self, stack: str, **config: object) -> None:
        self.pulumi("stack", "init", "--secrets-provider", "passphrase", stack=stack)
        self.configure(stack, **config)
        self.pulumi("up", "--yes", "--skip-preview", stack=stack)

    def configure(self, stack: str, **config: object) -> None:
        pairs = [arg for key, value in config.items() for arg in ("--plaintext", f"fleet:{key}={value}")]
        self.pulumi("config", "set-all", *pairs, stack=stack)

    def change(self, stack: str, **config: object) -> float:
        """Seconds for the preview and the up of a change, as a pull request and its merge run them."""
        self.configure(stack, **config)
        t = time.perf_counter()
        self.pulumi("preview", "--diff", stack=stack)
        self.pulumi("up", "--yes", "--skip-preview", stack=stack)
        return time.perf_counter() - t

    def state_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.backend / ".pulumi" / "stacks").rglob("*.json"))


def monolith(root: Path, n: int) -> Figures:
    fleet = Fleet(root)
    t = time.perf_counter()
    fleet.create("prod", layout="monolith", models=n)
    created = time.perf_counter() - t
    changed = fleet.change("prod", changed=0, revision=1)
    return Figures(created, changed, fleet.state_bytes(), 1)


def split(root: Path, n: int) -> Figures:
    fleet = Fleet(root)
    t = time.perf_counter()
    fleet.create("prod", layout="platform", models=n)
    for i in range(n):
        fleet.create(f"prod.model-{i:03d}", layout="model", models=n, index=i)
    created = time.perf_counter() - t
    changed = fleet.change("prod.model-000", changed=0, revision=1)
    return Figures(created, changed, fleet.state_bytes(), n + 1)


def main() -> None:
    if len(set(SIZES)) < 2 or min(SIZES) < 1:
        raise SystemExit(f"bench_fleet: give two sizes or more, each at least 1 model (got {SIZES})")
    results: dict[str, dict[int, Figures]] = {"monolith": {}, "split": {}}
    planned: dict[str, dict[int, Planned]] = {"monolith": {}, "split": {}}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        for n in SIZES:
            for layout in planned:
                planned[layout][n] = got = plan(Path(tmp) / f"plan-{layout}-{n}", n, layout)
                print(f"{layout:8} {n:4d} models: llmops plan {got.seconds:5.2f} s, names {', '.join(got.stacks)}")
        for n in SIZES:
            for layout, run in (("monolith", monolith), ("split", split)):
                results[layout][n] = fig = run(Path(tmp) / f"{layout}-{n}", n)
                print(
                    f"{layout:8} {n:4d} models ({n * 14 + 8:5d} resources in {fig.stacks:3d} stacks): "
                    f"create {fig.create_s:7.1f} s ({fig.create_s / n:5.2f} s/model), "
                    f"one-model change {fig.change_s:5.1f} s, state {fig.state_bytes / 1e6:6.2f} MB",
                    flush=True,
                )
    small, large = SIZES[0], SIZES[-1]
    print()
    print(
        "| layout | models | (a) plan | stacks planned | (c) create | s per model | (b) change (preview + up) | state |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for layout, by_size in results.items():
        for n, f in by_size.items():
            mb = f.state_bytes / 1e6
            a = planned[layout][n]
            row = f"{f.create_s:.1f} s | {f.create_s / n:.2f} | {f.change_s:.1f} s | {mb:.2f} MB"
            print(f"| {layout} | {n} | {a.seconds:.2f} s | {len(a.stacks)} | {row} |")
    print()
    for layout, by_size in results.items():
        # Linear growth: each added model costs the same, at every size (the marginal seconds per model).
        steps = [(a, b, (by_size[b].create_s - by_size[a].create_s) / (b - a)) for a, b in pairwise(sorted(by_size))]
        shown = ", ".join(f"{a}->{b}: {m:.2f} s" for a, b, m in steps)
        growth = steps[-1][2] / steps[0][2]
        print(f"{layout}: creation, seconds per added model ({shown}); last vs first step {growth:.2f}x")
    for layout, by_size in planned.items():
        print(
            f"{layout}: llmops plan, {large} vs {small} models: {by_size[large].seconds / by_size[small].seconds:.2f}x"
        )
    mono = results["monolith"][large].change_s / results["monolith"][small].change_s
    print(f"monolith: one-model change, {large} vs {small} models: {mono:.2f}x")
    ratio = results["split"][large].change_s / results["split"][small].change_s
    print(f"one-model change, {large} vs {small} models: {ratio:.2f}x (split layout; goal <= {GOAL}x)")


if __name__ == "__main__":
    os.environ.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    main()
