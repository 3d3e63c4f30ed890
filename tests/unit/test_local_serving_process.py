"""Detached processes and the stack's port table (`components/local/process.py`), with real processes.

Proves: a spawned server runs in its own session (out of the engine's process
group) with its output in its log; a pid whose start time differs is not taken
for it; stop() ends it by SIGTERM, or by SIGKILL when it ignores SIGTERM; a
process that dies before becoming healthy fails with its log tail; ports are
unique per owner even under concurrent allocation, stable for an owner, skip
ports already in use and are freed on release.

Cannot prove: survival across the real `pulumi` process exiting (the engine tests
do that), or behaviour under another user's processes.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from components.local.process import (
    PortAllocator,
    ProcessRef,
    StartError,
    is_running,
    spawn_detached,
    stop,
    wait_until,
)
from tests.support.project import free_port_base

pytestmark = pytest.mark.unit


def test_spawned_process_is_detached_logged_and_stopped(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = "import time; print('started', flush=True); time.sleep(60)"
    ref = spawn_detached([sys.executable, "-c", code], log_path=log, cwd=tmp_path)
    try:
        assert is_running(ref)
        assert os.getsid(ref.pid) == ref.pid, "must lead its own session"
        assert os.getpgid(ref.pid) != os.getpgid(0)
        wait_until(lambda: "started" in log.read_text(), ref=ref, timeout=30, log_path=log, what="sleeper")
        assert not is_running(ProcessRef(ref.pid, ref.started - 10)), "another start time is another process"
    finally:
        stop(ref, grace=5)
    assert not is_running(ref)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    ref = spawn_detached([sys.executable, "-c", code], log_path=log, cwd=tmp_path)
    wait_until(lambda: "ready" in log.read_text(), ref=ref, timeout=30, log_path=log, what="stubborn")
    started = time.monotonic()
    stop(ref, grace=0.5)
    assert not is_running(ref)
    assert time.monotonic() - started < 10


def test_early_exit_fails_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "broken.log"
    ref = spawn_detached(["sh", "-c", "echo 'OSError: no model here' >&2; exit 3"], log_path=log, cwd=tmp_path)
    with pytest.raises(StartError) as failure:
        wait_until(lambda: False, ref=ref, timeout=30, log_path=log, what="broken replica")
    assert "exited before it became healthy" in str(failure.value)
    assert "OSError: no model here" in str(failure.value)


def test_timeout_fails_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    ref = spawn_detached(["sh", "-c", "echo still loading; sleep 30"], log_path=log, cwd=tmp_path)
    try:
        with pytest.raises(StartError, match=r"not healthy after 1s(.|\n)*still loading"):
            wait_until(lambda: False, ref=ref, timeout=1, log_path=log, what="slow replica")
    finally:
        stop(ref, grace=2)


def test_ports_are_unique_stable_and_released(tmp_path: Path) -> None:
    base = free_port_base(span=11)
    ports = PortAllocator(tmp_path, base, span=11)
    with socket.socket() as busy:  # someone else's server on the first port of the range
        busy.bind(("127.0.0.1", base))
        busy.listen()
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(ports.allocate, [f"replica/{i}" for i in range(10)]))
        assert len(set(got)) == 10
        assert base not in got
        assert all(base < p < base + 11 for p in got)
        assert ports.allocate("replica/3") == got[3], "an owner gets its port back"
        with pytest.raises(StartError, match="no free port"):
            ports.allocate("one-too-many")
    ports.release("replica/3")
    assert got[3] not in ports.owned().values()
    assert ports.allocate("front/tiny-chat") in (base, got[3])
