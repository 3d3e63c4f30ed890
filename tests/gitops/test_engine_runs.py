"""`llmops ci`'s engine runs through the Automation API: previews, updates and drift, read from engine events.

Proves: with this checkout's engine and the project's policy pack, a preview reports the
resources it would create without creating them, an update reports the ones it changed, a
second preview reports nothing to do, and a file edited outside Pulumi is found by the
refresh preview the drift workflow runs (a failed `--expect-no-changes`, the changed
resource in the report). Uses a one-resource program, so it runs in seconds.
Cannot prove: the llmops program's own resources (tests/gitops/test_e2e_local.py does).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pulumi import automation as auto

from llmops.ci import Engine, drift_report
from llmops.engine import engine_env
from tests.support.project import REPO

pytestmark = [pytest.mark.engine, pytest.mark.gitops]

PROGRAM = Path(__file__).parent / "programs" / "drift"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    assert (REPO / "bin" / "pulumi").is_file(), "bin/pulumi is missing: `make setup` builds it"
    work = tmp_path / "program"
    shutil.copytree(PROGRAM, work)
    for link in (".venv", "bin"):
        (work / link).symlink_to(REPO / link)
    (tmp_path / "state").mkdir()
    env = engine_env(REPO, backend_url=f"file://{tmp_path / 'state'}")
    env["PULUMI_CONFIG_PASSPHRASE"] = "gitops-engine-test"
    e = Engine(work, env, str(REPO / "policies" / "pack"), str(REPO / "policies" / "config"), timeout=300, stream=False)
    stack = auto.Stack.create("check", e.workspace())
    stack.set_config("path", auto.ConfigValue(str(tmp_path / "file.txt")))
    return e


def test_preview_up_and_drift_are_read_from_engine_events(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    preview = engine.preview("check", "dev")
    assert preview.ok and preview.changes == {"create": 2} and not target.exists()
    assert "Policy Packs run" in preview.output and "+ 2 to create" in preview.output

    update = engine.up("check", "dev")
    assert update.ok and update.changes == {"create": 2}
    assert any(urn.endswith("::greeting") for urn in update.changed_urns)
    assert target.read_text() == "hello"

    again = engine.preview("check", "dev", refresh=True)
    assert again.ok and not again.has_changes and again.changes == {"same": 2}

    target.write_text("edited by hand")
    drift = engine.preview("check", "dev", refresh=True)
    assert not drift.ok  # --expect-no-changes
    assert drift.has_changes and drift.changes.get("update") == 1
    assert [u for u in drift.changed_urns if u.endswith("::greeting")]
    report = drift_report([drift])
    assert "**check**: preview failed, 1 to update, 1 unchanged" in report and "edited by hand" in report
