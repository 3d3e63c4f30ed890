"""Keeps one process running: the local target's stand-in for a kubelet's restart policy.

The front supervises the replicas; this supervises the front. It starts the command,
and when the command dies without being asked to (a crash, an OOM kill, kill -9) starts
it again after a short pause, so the endpoint comes back on its own port with no
operator and no `pulumi up`. A command that keeps dying (more than `--restarts` times
within `--window` seconds: a bad config, a taken port) is not restarted forever: the
keeper exits with its status, and the provider's health wait or `pulumi refresh`
reports it with the log.

SIGTERM or SIGINT to the keeper (what `stop()` sends to the process group) ends the
command and the keeper. If the keeper itself is killed, the command gets SIGTERM from
the kernel (PR_SET_PDEATHSIG), so no orphan keeps the port.

    python -m llmops.local.serving.keeper [--restarts N --window S] -- COMMAND...
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
PAUSE_SECONDS = 0.5  # between a death and the restart: a crash loop cannot spin a core


def die_with_parent() -> None:  # runs in the child, between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def keep(argv: Sequence[str], restarts: int, window: float) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_stop(_signum: int, _frame: object) -> None:
        # SIGTERM whatever came: stop() signals the whole group too, and a server takes a second
        # SIGTERM as the same request to drain (a second SIGINT would cut its drain short).
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    deaths: list[float] = []
    while True:
        # preexec_fn only calls prctl: no locks or imports between fork and exec.
        child = subprocess.Popen(list(argv), preexec_fn=die_with_parent)
        code = child.wait()
        if stopping:
            return 0
        now = time.monotonic()
        deaths = [t for t in deaths if now - t < window] + [now]
        print(f"keeper: {' '.join(argv)[:120]} exited with {code} (death {len(deaths)})", file=sys.stderr, flush=True)
        if len(deaths) > restarts:
            print(f"keeper: more than {restarts} deaths in {window:g} s: giving up", file=sys.stderr, flush=True)
            return code if code > 0 else 1
        time.sleep(PAUSE_SECONDS)
        if stopping:
            return 0


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keeper", description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=5, help="deaths tolerated within --window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to keep running")
    ns = parser.parse_args(args)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if not command:
        parser.error("no command to keep running (put it after --)")
    return keep(command, ns.restarts, ns.window)


if __name__ == "__main__":
    sys.exit(main())
