"""Evaluation: wall time of the tiny model's shipped suites, cold and from the cache, and what
the local Evaluation adds to an `up`.

- cold: a fresh interpreter measures all four suites of tiny-chat's gates with lm-eval on
  the artifact its registry inputs trained (imports, model load and every suite included:
  what an `up` that changes the weights pays);
- cache hit: the local provider's evaluate() for the same weights, suites and harness (what a
  version bump that keeps the artifact pays);
- per `up`, changed or not: what the program computes for the Evaluation's inputs (each suite's
  content hash, the harness version);
- `--up`: end to end on a throwaway copy of the project (its own stack, ports and state): a
  no-change `pulumi up` and a version bump, each with tiny-chat's gates and without them, side
  by side (the first `up` trains and is not timed).

Prints each number beside its goal. Needs the artifact of tiny-chat's current registry inputs
in the store (`make up`, or `llmops eval run tiny-chat` after training); trains it otherwise.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.quick import quick  # noqa: E402
from components.local.evaluation import evaluate  # noqa: E402
from llmops.evaluation.cache import CACHE_DIR  # noqa: E402
from llmops.evaluation.suites import load_suite  # noqa: E402
from llmops.evaluation.weights import resolve_weights  # noqa: E402
from llmops.registry import load_registry  # noqa: E402
from llmops.settings import load_all_stacks  # noqa: E402

COLD = """
import sys, time
t = time.perf_counter()
from pathlib import Path
from llmops.evaluation.harness import local_model, run_suite
from llmops.evaluation.suites import load_suite
lm = local_model(Path(sys.argv[1]))
for name in sys.argv[2:]:
    run_suite(load_suite(Path("models"), name), lm, model="tiny-chat", weights="bench")
print(time.perf_counter() - t)
"""


QUICK = quick()  # quick mode: one repeat, and initialised weights when the trained artifact is absent
REPEATS = 1 if QUICK else 5


def artifact(entry: object) -> tuple[Path, bool]:
    """The trained artifact of tiny-chat's registry inputs (True), or in quick mode initialised weights (False)."""
    from llmops.errors import UserError

    try:
        return resolve_weights(ROOT, entry).path, True  # type: ignore[arg-type]
    except UserError as exc:
        if not QUICK:
            raise SystemExit(f"{exc} (the benchmark measures that artifact)") from None
    from llmops.local.train import initialised_checkpoint

    print("quick mode: tiny-chat is not trained here; measuring initialised weights of its architecture")
    return initialised_checkpoint(ROOT, Path(tempfile.mkdtemp(prefix="bench-evaluation-")) / "model"), False


def bench_up() -> None:
    import tempfile

    from tests.support.project import copy_project

    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "project", ROOT)
        artifacts = ROOT / ".state" / "artifacts"
        if artifacts.is_dir():  # content-addressed: reuse this checkout's trained artifacts and records
            import shutil

            shutil.copytree(artifacts, project.root / ".state" / "artifacts", symlinks=True)
            shutil.copytree(ROOT / CACHE_DIR, project.root / CACHE_DIR, dirs_exist_ok=True)
        project.edit_model("tiny-chat", lambda d: d["serving"].update(min_replicas=1, max_replicas=1))
        stack = project.local_stack("bench-evaluation", healthTimeoutSeconds=300)

        def up() -> float:
            t = time.perf_counter()
            project.pulumi("up", "--yes", "--skip-preview", stack=stack, timeout=1200)
            return time.perf_counter() - t

        gates = registry_gates()
        try:
            up()
            rows = []
            for label, evaluation in (("with gates", gates), ("without gates", [])):
                project.edit_model("tiny-chat", lambda d, e=evaluation: d["compliance"].update(evaluation=e))
                up()
                no_change = up()
                version = f"b{len(rows)}"
                project.edit_model(
                    "tiny-chat", lambda d, v=version: d["serving"].update(variants=[{"version": v, "weight": 100}])
                )
                rows.append((label, no_change, up()))
            print("pulumi up on a throwaway local stack (tiny-chat, 1 replica)")
            for label, no_change, bump in rows:
                print(f"  {label:<15} no-change up {no_change:6.1f} s   version bump {bump:6.1f} s")
            print(
                f"  added by the Evaluation: no-change {rows[0][1] - rows[1][1]:+.1f} s, "
                f"bump {rows[0][2] - rows[1][2]:+.1f} s"
            )
        finally:
            project.pulumi("destroy", "--yes", "--skip-preview", stack=stack, check=False, timeout=600)


def registry_gates() -> list[dict[str, object]]:
    registry = load_registry(ROOT / "models", load_all_stacks(ROOT / "stacks"))
    return [g.model_dump(exclude_none=True) for g in registry.models["tiny-chat"].compliance.evaluation]


def main() -> None:
    registry = load_registry(ROOT / "models", load_all_stacks(ROOT / "stacks"))
    entry = registry.models["tiny-chat"]
    suites = list(dict.fromkeys(g.suite for g in entry.compliance.evaluation))
    path, trained = artifact(entry)

    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", COLD, str(path), *suites], cwd=ROOT, capture_output=True, text=True, check=True
    )
    cold_wall = time.perf_counter() - started
    cold_inside = float(out.stdout.strip().splitlines()[-1])

    weights = path.name
    props = {
        "model": "tiny-chat",
        "suites": [
            {"name": s.name, "sha256": s.sha256, "path": str(s.path)}
            for s in (load_suite(ROOT / "models", n) for n in suites)
        ],
        "lmEvalVersion": version("lm_eval"),
        "versions": [{"version": "v1", "weight": 100, "weights": weights, "path": str(path)}],
        # Untrained weights fail every gate by design: time the suites without judging them.
        "gates": [g.model_dump() for g in entry.compliance.evaluation] if trained else [],
        # Untrained weights' records stay out of this checkout's evaluation cache.
        "cacheDir": str(ROOT / CACHE_DIR) if trained else tempfile.mkdtemp(prefix="bench-evaluation-records-"),
    }
    evaluate(props, None)  # fills the cache for these weights if the cold run above did not
    hits = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        evaluate(props, None)
        hits.append(time.perf_counter() - t)

    program = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        hashes = [load_suite(ROOT / "models", name).sha256 for name in suites]
        assert len(hashes) == len(suites) and version("lm_eval")
        program.append(time.perf_counter() - t)

    rows = [
        ("suites cold, fresh interpreter (wall)", cold_wall, 30.0),
        ("suites cold, inside the interpreter", cold_inside, 30.0),
        (f"cache hit: evaluate() of 4 suites (median of {REPEATS})", statistics.median(hits), 1.0),
        (f"per up: suite hashes + harness version (median of {REPEATS})", statistics.median(program), None),
    ]
    print(f"tiny-chat, {len(suites)} suites, weights {weights[:12]}, lm-eval {version('lm_eval')}")
    for label, value, goal in rows:
        print(f"  {label:<55} {value:8.3f} s   goal {'< ' + format(goal, 'g') + ' s' if goal else '-'}")
    print(json.dumps({"cold_s": round(cold_wall, 2), "cache_hit_s": round(statistics.median(hits), 4)}))


if __name__ == "__main__":
    main()
    if "--up" in sys.argv:
        bench_up()
