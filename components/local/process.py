"""Detached, long-lived processes for the local target, and the ports they listen on.

The local dynamic providers start servers that must outlive `pulumi` (the engine
stops its provider processes when a command ends), so every process here runs in
its own session, is identified by (pid, start time) so a reused pid is never taken
for it, and is stopped by process group. Ports come from the stack's own range
(`settings.local.base_port` …) through a small lock-guarded allocation table in the
stack's state folder, so two resources of one stack never race for a port and a
resource keeps its port across restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

PORTS_FILE = "ports.json"
STOP_GRACE_SECONDS = 30.0


class StartError(RuntimeError):
    """A process that did not become healthy; the message ends with its log tail."""


@dataclass(frozen=True)
class ProcessRef:
    """One process, robust to pid reuse: the pid plus the kernel's start time of that pid."""

    pid: int
    started: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessRef:
        return cls(pid=int(data["pid"]), started=float(data["started"]))


def spawn_detached(
    argv: Sequence[str], *, log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> ProcessRef:
    """Start `argv` in a new session with stdout+stderr appended to `log_path`.

    The new session keeps it out of the engine's process group (the engine kills
    that group), and no pipe ties it to us, so it lives on after `pulumi` exits.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    # Popen would reap the child in its destructor only when it has exited; a live
    # child is simply left to run (and to init, once this process ends).
    proc.returncode = 0  # silence "subprocess still running" warnings at interpreter exit
    return ProcessRef(pid=proc.pid, started=psutil.Process(proc.pid).create_time())


def is_running(ref: ProcessRef) -> bool:
    """The process exists, is the same one we started, and is not a zombie."""
    try:
        proc = psutil.Process(ref.pid)
        return abs(proc.create_time() - ref.started) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    # Our own children (started by this provider process) must be reaped or they stay zombies.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(ref: ProcessRef, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process group (servers drain in-flight requests on it), SIGKILL after `grace`."""
    if not is_running(ref):
        _reap(ref.pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(ref.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(ref.pid)
        if not is_running(ref):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(ref.pid, signal.SIGKILL)
    for _ in range(50):
        _reap(ref.pid)
        if not is_running(ref):
            return
        time.sleep(0.1)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on the port."""
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on the port and it can be bound now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(
    ready: Callable[[], bool], *, ref: ProcessRef, timeout: float, log_path: Path, what: str, interval: float = 0.25
) -> None:
    """Poll `ready()` until true; raise StartError with the log tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if not is_running(ref):
            _reap(ref.pid)
            raise StartError(f"{what} exited before it became healthy; log tail ({log_path}):\n{log_tail(log_path)}")
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() >= deadline:
            raise StartError(f"{what} not healthy after {timeout:g}s; log tail ({log_path}):\n{log_tail(log_path)}")
        time.sleep(interval)


class PortAllocator:
    """Ports of one stack: `base .. base+span-1`, owned by name, recorded in `<state>/ports.json`.

    The table is read and written under an exclusive `flock`, so concurrent provider
    calls of one stack (the engine runs independent resources in parallel) never
    hand out one port twice. An owner that asks again gets its port back.
    """

    def __init__(self, state_dir: Path, base: int, span: int = 40):
        self.state_dir = state_dir
        self.base = base
        self.span = span

    @contextlib.contextmanager
    def _table(self) -> Iterator[dict[str, int]]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "ports.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.state_dir / PORTS_FILE
            try:
                table: dict[str, int] = json.loads(path.read_text()) if path.is_file() else {}
            except ValueError:
                table = {}
            before = dict(table)
            yield table
            if table != before:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(table, indent=2, sort_keys=True))
                tmp.replace(path)

    def allocate(self, owner: str) -> int:
        with self._table() as table:
            if owner in table:
                return table[owner]
            taken = set(table.values())
            for port in range(self.base, self.base + self.span):
                if port not in taken and port_free(port):
                    table[owner] = port
                    return port
        raise StartError(f"no free port left in {self.base}..{self.base + self.span - 1} for {owner}")

    def release(self, owner: str) -> None:
        with self._table() as table:
            table.pop(owner, None)

    def owned(self) -> dict[str, int]:
        with self._table() as table:
            return dict(table)
