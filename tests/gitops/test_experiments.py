"""Git-native progressive delivery: `advance`, `rollback` and `history` on real repositories.

Proves: a promote verdict commits the canary's next weight step through `llmops
promote` (and at the last step serves it alone); a roll-back verdict commits the
canary's removal with the report (verdict, p-values, alpha) in the message; an
inconclusive verdict commits nothing until `max_duration` has passed; `history`
reads from git which versions serve an environment and since which commit, and the
analysis window starts there; `rollback` reverts the environment's last registry
change (or every change after `--to`) in one ordinary commit, and refuses with
nothing changed on a dirty tree or an unknown commit.
Cannot prove: that CI deploys the commits (the ci tests cover `llmops ci deploy`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from llmops.cli import main
from llmops.experiments.data import ExperimentData, VariantData
from llmops.experiments.delivery import DeliveryError, advance, history, rollback
from llmops.registry import Deployment, validate
from llmops.settings import load_all_stacks
from tests.gitops.conftest import GIT_ENV, Repo

pytestmark = pytest.mark.gitops

REPO = Path(__file__).resolve().parents[2]
ROLLOUT = {"steps": [10, 50, 100], "min_samples": 100, "max_duration": 3600, "looks": 5, "metrics": ["error_rate"]}


def tiny_chat(variants: list[tuple[str, int]]) -> str:
    entry = yaml.safe_load((REPO / "models" / "tiny-chat.yaml").read_text())
    entry["deployments"]["local"] = {
        "variants": [{"version": v, "weight": w} for v, w in variants],
        "rollout": ROLLOUT,
    }
    entry["versions"]["v2"] = {"local": "weights/v2"}  # the canary: v1 is the training run
    return "# yaml-language-server: $schema=schema.json\n" + yaml.safe_dump(entry, sort_keys=False)


@pytest.fixture
def registry(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Repo:
    for key, value in GIT_ENV.items():  # the commits these commands make need an identity
        monkeypatch.setenv(key, value)
    shutil.rmtree(repo.root / "stacks")
    shutil.copytree(REPO / "stacks", repo.root / "stacks")
    shutil.copytree(REPO / "models" / "configs", repo.root / "models" / "configs")
    shutil.copytree(REPO / "models" / "evals", repo.root / "models" / "evals")
    shutil.copytree(REPO / "models" / "datasets", repo.root / "models" / "datasets")
    repo.commit("feat(models): tiny-chat v1", {"models/tiny-chat.yaml": tiny_chat([("v1", 100)])})
    repo.commit("feat(models): tiny-chat v2 canary", {"models/tiny-chat.yaml": tiny_chat([("v1", 90), ("v2", 10)])})
    return repo


def served(root: Path) -> list[tuple[str, int]]:
    reg, problems = validate(root / "models", load_all_stacks(root / "stacks"))
    assert problems == []
    return [(v.version, v.weight) for v in reg.models["tiny-chat"].deployment("local").variants]


class Source:
    """Experiment data per call, as a metrics source would return it; records each window."""

    def __init__(self, canary_errors: float | None, n: int = 4000):
        self.canary_errors, self.n = canary_errors, n
        self.windows: list[tuple[float, float]] = []

    def __call__(self, dep: Deployment, start: float, end: float) -> ExperimentData:
        self.windows.append((start, end))
        out = []
        for v in dep.variants:
            if self.canary_errors is None:
                out.append(VariantData(v.version, v.weight))
                continue
            n = self.n * v.weight // 100
            rate = self.canary_errors if v.version == "v2" else 0.01
            out.append(VariantData(v.version, v.weight, n, round(n * rate)))
        return ExperimentData(dep.name, dep.environment, start, end, out, source="test")


def now_of(repo: Repo, after: float = 60) -> float:
    return float(repo.git("log", "-1", "--format=%ct")) + after


def test_promote_walks_the_canary_step_by_step_to_100(registry: Repo) -> None:
    source = Source(canary_errors=0.01)
    canary_commit = registry.head()
    decisions = advance(registry.root, "local", source, now=now_of(registry))
    assert [d.action for d in decisions] == ["promote"]
    assert served(registry.root) == [("v1", 50), ("v2", 50)]
    assert registry.git("log", "-1", "--format=%s").startswith("feat(models): promote tiny-chat v2 to local at 50%")
    assert "Verdict: promote" in registry.git("log", "-1", "--format=%b")
    # The window began when the 90/10 split was committed.
    assert source.windows[0][0] == float(registry.git("log", "-1", "--format=%ct", canary_commit))

    advance(registry.root, "local", source, now=now_of(registry))
    assert served(registry.root) == [("v2", 100)]
    assert registry.git("status", "--porcelain") == ""
    # Nothing left to advance: one variant serves everything.
    assert advance(registry.root, "local", source, now=now_of(registry)) == []

    hist = history(registry.root, "local")["tiny-chat"]
    assert [c.state for c in hist.changes] == [
        (("v1", 100),),
        (("v1", 90), ("v2", 10)),
        (("v1", 50), ("v2", 50)),
        (("v2", 100),),
    ]
    assert hist.current is not None and hist.current.commit == registry.head()


def test_a_worse_canary_is_removed_with_the_report_in_the_commit(registry: Repo) -> None:
    before = registry.head()
    decisions = advance(registry.root, "local", Source(canary_errors=0.10), now=now_of(registry))
    assert [d.action for d in decisions] == ["rollback"]
    assert served(registry.root) == [("v1", 100)]
    assert registry.git("rev-parse", "HEAD~1") == before
    message = registry.git("log", "-1", "--format=%B")
    assert message.startswith("revert(models): roll back tiny-chat v2 in local")
    assert "VERDICT: ROLLBACK" in message and "two-proportion z-test" in message and "p=" in message
    assert "Bonferroni" in message and "Verdict: rollback (rule harm)" in message


def test_a_proven_harm_is_rolled_back_at_once_on_thin_data(registry: Repo) -> None:
    """Below min_samples (50 canary requests of 100), a minute into the step: half the canary's
    requests fail, and that is proven, so it is removed now, not at max_duration."""
    decisions = advance(registry.root, "local", Source(canary_errors=0.5, n=500), now=now_of(registry))
    assert [d.action for d in decisions] == ["rollback"]
    assert served(registry.root) == [("v1", 100)]
    message = registry.git("log", "-1", "--format=%B")
    assert "Verdict: rollback (rule harm)" in message and "before min_samples (100)" in message
    assert "Fisher's exact test" in message


def test_inconclusive_changes_nothing_until_max_duration(registry: Repo) -> None:
    head = registry.head()
    decisions = advance(registry.root, "local", Source(canary_errors=None), now=now_of(registry))
    assert [d.action for d in decisions] == ["none"] and registry.head() == head
    assert decisions[0].detail.startswith("inconclusive (rule insufficient-data), no change")
    late = advance(
        registry.root, "local", Source(canary_errors=None), now=now_of(registry, ROLLOUT["max_duration"] + 1)
    )
    assert [d.action for d in late] == ["rollback"]
    assert "Verdict: rollback (rule max-duration): no verdict within max_duration" in registry.git(
        "log", "-1", "--format=%B"
    )
    assert served(registry.root) == [("v1", 100)]


def test_advance_refuses_a_dirty_registry(registry: Repo) -> None:
    registry.write("models/tiny-chat.yaml", tiny_chat([("v1", 80), ("v2", 20)]))
    with pytest.raises(DeliveryError, match="uncommitted"):
        advance(registry.root, "local", Source(0.01), now=now_of(registry))


def test_rollback_reverts_the_last_change_and_history_shows_it(
    registry: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(registry.root))
    canary = registry.head()
    assert main(["rollback", "--stack", "local"]) == 0
    assert served(registry.root) == [("v1", 100)]
    assert f"This reverts commit {canary}" in registry.git("log", "-1", "--format=%B")
    capsys.readouterr()
    assert main(["history", "--stack", "local"]) == 0
    out = capsys.readouterr().out
    assert "tiny-chat" in out and "v1 100%" in out and registry.head()[:12] in out


def test_rollback_to_a_commit_reverts_every_change_after_it(registry: Repo) -> None:
    first = registry.git("rev-parse", "HEAD~1")
    registry.commit("feat(models): tiny-chat v2 at 50", {"models/tiny-chat.yaml": tiny_chat([("v1", 50), ("v2", 50)])})
    sha, reverted = rollback(registry.root, "local", first)
    assert len(reverted) == 2 and sha == registry.head()
    assert served(registry.root) == [("v1", 100)]


def test_rollback_refuses_and_changes_nothing(registry: Repo) -> None:
    head = registry.head()
    with pytest.raises(DeliveryError, match="not a commit"):
        rollback(registry.root, "local", "0" * 40)
    with pytest.raises(DeliveryError, match="has not changed since"):
        rollback(registry.root, "local", head)
    registry.write("README.md", "dirty\n")
    with pytest.raises(DeliveryError, match="uncommitted"):
        rollback(registry.root, "local")
    assert registry.head() == head


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["experiment", "report", "--window", "-5"], "--window: -5 must be at least 1"),
        (["experiment", "report", "--window", "0"], "--window: 0 must be at least 1"),
        (["experiment", "smoke", "--per-prompt", "ten"], "--per-prompt: 'ten' is not a whole number"),
        (["experiment", "advance", "--period", "0"], "--period: 0 must be at least 1"),
    ],
)
def test_a_window_or_period_below_one_is_a_usage_error_naming_it(
    args: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and why in capsys.readouterr().err
