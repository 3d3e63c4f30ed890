"""The keeper that restarts the local front: real processes, real signals.

Proves: a command killed with SIGKILL is started again; SIGTERM to the keeper ends the
command and the keeper (status 0); a command that keeps dying is given up on with its
status after the allowed restarts; a keeper killed with SIGKILL takes its command with
it (no orphan keeps a port); a keeper without a command is a usage error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from llmops.local.serving.keeper import main

pytestmark = pytest.mark.unit

SLEEPER = "import os, sys, time, pathlib; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(120)"


def keeper(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmops.local.serving.keeper", *args], stderr=subprocess.PIPE, start_new_session=True
    )


def until(what: str, ok: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def pid_in(path: Path) -> int:
    until(f"{path} written", lambda: path.exists() and path.read_text() != "")
    return int(path.read_text())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_command_is_started_again_and_sigterm_ends_both(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    k = keeper("--", sys.executable, "-c", SLEEPER, str(pid_file))
    try:
        first = pid_in(pid_file)
        pid_file.write_text("")
        os.kill(first, signal.SIGKILL)
        second = pid_in(pid_file)
        assert second != first and not gone(second)
        k.send_signal(signal.SIGTERM)
        assert k.wait(timeout=15) == 0
        until("the command ended with the keeper", lambda: gone(second))
        assert b"exited with -9" in (k.stderr.read() if k.stderr else b"")
    finally:
        k.kill()


def test_a_command_that_keeps_dying_is_given_up_on_with_its_status() -> None:
    k = keeper("--restarts", "2", "--window", "60", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert k.wait(timeout=30) == 3
    err = k.stderr.read().decode() if k.stderr else ""
    assert err.count("exited with 3") == 3 and "giving up" in err


def test_a_killed_keeper_takes_its_command_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    k = keeper("--", sys.executable, "-c", SLEEPER, str(pid_file))
    command = pid_in(pid_file)
    k.kill()
    k.wait(timeout=15)
    until("the orphaned command got SIGTERM", lambda: gone(command))


def test_no_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
