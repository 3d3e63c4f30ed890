"""`llmops ci`'s engine runner stops an operation that outlives `--timeout`.

The Automation API has no timeout of its own: past the limit the runner terminates the
`pulumi` processes the operation started. Here the "engine" is a copy of `sleep` named
`pulumi`, started the way the Automation API starts the CLI (a child process).
Proves: the runner reports the timeout, and the child it started is terminated rather
than left running; processes that existed before the operation are not touched.
Cannot prove: how the real engine cleans up after SIGTERM (it exits, leaving the stack
for `pulumi cancel`/`refresh`, as after any interrupted update).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from llmops.ci import Engine
from llmops.ci.runner import _TimedOut

pytestmark = pytest.mark.unit


def test_an_operation_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    fake = tmp_path / "pulumi"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", fake)
    bystander = subprocess.Popen([str(fake), "60"])  # started before the operation: left alone
    codes: list[int] = []

    def operation() -> None:
        codes.append(subprocess.run([str(fake), "60"], check=False).returncode)

    engine = Engine(tmp_path, {}, "policies/pack", "policies/config", timeout=1, stream=False)
    try:
        with pytest.raises(_TimedOut):
            engine._within_timeout(operation, "preview")
        assert codes == [-signal.SIGTERM]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_an_operation_within_its_timeout_returns_normally(tmp_path: Path) -> None:
    engine = Engine(tmp_path, {}, "policies/pack", "policies/config", timeout=30, stream=False)
    ran: list[bool] = []
    engine._within_timeout(lambda: ran.append(True), "up")
    assert ran == [True]
    with pytest.raises(ValueError, match="boom"):
        engine._within_timeout(lambda: (_ for _ in ()).throw(ValueError("boom")), "up")
