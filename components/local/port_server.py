"""A supervised local server on one port of the stack's range: the shape the local target's
long-running processes share (front end, Prometheus, dashboard, drift monitors).

`PortServerProvider` is the dynamic provider around one such process:

- create takes the owner's port from the stack's port table, starts the process and waits
  until its health URL answers (the port goes back to the table if it never does);
- read reports `running`: the recorded process is alive and its port open, so `refresh`
  notices a killed server;
- diff asks for an update when an input changed or the server is dead, and a replacement
  when the stack's state folder moved;
- update, by default, restarts the process on the same port (a server that can take new
  inputs in place overrides it);
- delete stops the process, gives the port back and removes what `cleanup` names.

A subclass says which port owner and id a resource has, which inputs it reacts to, and how
its process starts (`_start`, usually through `launch`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.local.process import (
    STOP_GRACE_SECONDS,
    PortAllocator,
    ProcessRef,
    is_running,
    port_open,
    spawn_detached,
    stop,
    wait_until,
)

PORT_SPAN = 40  # ports of the stack's range the local target may use (settings.local.base_port onwards)

# The outputs every port server starts with (the engine needs them declared before create).
SERVER_OUTPUTS: dict[str, Any] = {"url": None, "port": None, "pid": None, "started": None, "log": None, "running": True}


def progress(message: str) -> None:
    # The engine shows each stderr line of a provider as an info message of `pulumi up`.
    print(message, file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The environment of server processes: this one's, offline, unbuffered."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stack_ports(props: dict[str, Any]) -> PortAllocator:
    """The port table of the stack whose local settings `props` carry (every local provider's ports)."""
    return PortAllocator(Path(props["state_dir"]), int(props["base_port"]), int(props.get("port_span", PORT_SPAN)))


def launch(
    props: dict[str, Any],
    port: int,
    argv: list[str],
    *,
    log: Path,
    cwd: Path,
    health_path: str,
    what: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start `argv` detached, wait until `http://127.0.0.1:<port><health_path>` answers 200; the outputs."""
    ref = spawn_detached(argv, log_path=log, cwd=cwd, env=env if env is not None else child_env())
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{url}{health_path}", timeout=2).status_code == 200,
        ref=ref,
        timeout=float(props["health_timeout"]),
        log_path=log,
        what=f"{what} (port {port})",
    )
    return {**props, **ref.to_dict(), "port": port, "url": url, "log": str(log), "running": True}


class PortServerProvider(ResourceProvider):
    """One supervised server process on a port of the stack (see the module's docstring)."""

    # Inputs whose change updates the resource, and those whose change replaces it.
    inputs: Sequence[str] = ()
    replaces_on: Sequence[str] = ("state_dir",)
    stop_grace: float = STOP_GRACE_SECONDS

    def port_owner(self, props: dict[str, Any]) -> str:
        raise NotImplementedError

    def resource_id(self, props: dict[str, Any]) -> str:
        return self.port_owner(props).replace("/", "-")

    def _start(self, props: dict[str, Any], port: int) -> dict[str, Any]:
        raise NotImplementedError

    def cleanup(self, props: dict[str, Any]) -> None:
        """Remove what the server left on disk once it is stopped (nothing by default)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        owner = self.port_owner(props)
        port = stack_ports(props).allocate(owner)
        try:
            outs = self._start(props, port)
        except BaseException:
            stack_ports(props).release(owner)
            raise
        return CreateResult(self.resource_id(props), outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        alive = "pid" in props and is_running(ProcessRef.from_dict(props)) and port_open(int(props["port"]))
        return ReadResult(id_, {**props, "running": alive})

    def alive(self, props: dict[str, Any]) -> bool:
        return props.get("running") is not False and bool((self.read("", props).outs or {}).get("running"))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in self.replaces_on if olds.get(k) != news.get(k)]
        changed = [k for k in self.inputs if olds.get(k) != news.get(k)]
        dead = not self.alive(olds)
        return DiffResult(changes=bool(replaces or changed or dead), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if "pid" in olds:
            stop(ProcessRef.from_dict(olds), grace=5)
        return UpdateResult(self._start(news, int(olds["port"])))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if "pid" in props:
            stop(ProcessRef.from_dict(props), grace=self.stop_grace)
        stack_ports(props).release(self.port_owner(props))
        self.cleanup(props)
