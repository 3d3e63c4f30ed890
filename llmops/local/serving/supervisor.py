"""Liveness for replicas: restart one whose health check fails several times in a row.

The front probes every replica each `health_interval`; the supervisor keeps the
count of consecutive failures per replica. At `failures` in a row it kills the
process (SIGKILL to its process group: a hung or SIGSTOPped replica ignores
anything gentler) and starts it again from the recipe in the routing table
(`Launch`), on the same port, recording the new pid in the replica's pid file,
which the endpoint provider reads as the live process. Meanwhile the front does
not route to it (it is unhealthy) and takes it back at its first good probe.

A replica that does not come back gets restarted again after a backoff that
doubles (up to `max_backoff`), so a replica that cannot start costs little.
Restarts are counted in `llmops_replica_restarts_total`.

Like a kubelet, the supervisor only restarts what the table lists: which replicas
exist is the provider's decision (and the autoscaler's, within its bounds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from llmops.local.serving.routing import Launch, Upstream


@dataclass(frozen=True)
class Live:
    """The process serving a replica now, as its pid file records it."""

    pid: int
    started: float

    def running(self) -> bool:
        try:
            p = psutil.Process(self.pid)
            return bool(abs(p.create_time() - self.started) < 1.0 and p.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False


def read_pid_file(path: Path) -> Live | None:
    try:
        data = json.loads(path.read_text())
        return Live(int(data["pid"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_pid_file(path: Path, live: Live) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"pid": live.pid, "started": live.started}))
    tmp.replace(path)


def parked_marker(launch: Launch) -> Path:
    """Present while scale to zero keeps the replica stopped: the endpoint provider then
    reads the stopped process as the state wanted, not as drift."""
    return Path(f"{launch.pid_file}.parked")


def spawn(launch: Launch) -> Live:
    """Start a replica in its own session (it must outlive the front), output appended to its log."""
    env = {**os.environ, **launch.env}
    Path(launch.log).parent.mkdir(parents=True, exist_ok=True)
    with open(launch.log, "ab") as log:
        proc = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    proc.returncode = 0  # a detached child: never reaped through this Popen
    live = Live(proc.pid, psutil.Process(proc.pid).create_time())
    write_pid_file(Path(launch.pid_file), live)
    parked_marker(launch).unlink(missing_ok=True)
    return live


def kill(live: Live | None) -> None:
    """SIGKILL the replica's process group (it leads its own session)."""
    if live is None or not live.running():
        return
    try:
        os.killpg(live.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 10
    while live.running() and time.monotonic() < deadline:
        time.sleep(0.05)


def terminate(live: Live | None, grace: float = 30.0) -> None:
    """SIGTERM (the replica finishes what it is generating), SIGKILL after `grace` seconds."""
    if live is None or not live.running():
        return
    try:
        os.killpg(live.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while live.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    kill(live)


@dataclass
class _State:
    failures: int = 0
    restarts: int = 0  # restarts since the replica was last healthy
    last_restart: float = 0.0


@dataclass
class Supervisor:
    """Counts failed probes per replica and restarts a replica at `failures` in a row."""

    failures: int = 3
    backoff: float = 20.0  # seconds a restarted replica gets to become healthy before the next restart
    max_backoff: float = 300.0
    on_restart: Callable[[Upstream], None] = lambda _u: None
    clock: Callable[[], float] = time.monotonic
    states: dict[str, _State] = field(default_factory=dict)

    def observe(self, upstream: Upstream, healthy: bool) -> bool:
        """Record one probe; True when the replica was restarted because of it."""
        state = self.states.setdefault(upstream.address, _State())
        if healthy:
            self.states[upstream.address] = _State()
            return False
        state.failures += 1
        if upstream.launch is None or state.failures < self.failures:
            return False
        wait = min(self.max_backoff, self.backoff * 2 ** max(0, state.restarts - 1)) if state.restarts else 0.0
        if self.clock() - state.last_restart < wait:
            return False
        self.restart(upstream)
        state.failures, state.restarts, state.last_restart = 0, state.restarts + 1, self.clock()
        return True

    def restart(self, upstream: Upstream) -> None:
        assert upstream.launch is not None
        kill(read_pid_file(Path(upstream.launch.pid_file)))
        spawn(upstream.launch)
        self.on_restart(upstream)

    def started(self, upstream: Upstream) -> None:
        """A replica just started (by the autoscaler): give it the backoff to become healthy."""
        self.states[upstream.address] = _State(restarts=1, last_restart=self.clock())

    def forget(self, addresses: set[str]) -> None:
        """Drop the state of replicas no longer in the table."""
        for gone in set(self.states) - addresses:
            del self.states[gone]
