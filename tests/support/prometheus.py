"""A real Prometheus serving generated series, for the experiment source and report tests.

The series are written as OpenMetrics with timestamps, loaded with `promtool tsdb
create-blocks-from openmetrics`, and served by Debian's `prometheus` on a free port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_openmetrics(text: str, tmp: Path) -> Iterator[str]:
    """Prometheus' URL, serving the series of `text` (OpenMetrics, ending in `# EOF`)."""
    # No skip: `make setup` installs it, and a missing install must fail, not pass quietly.
    assert shutil.which("prometheus") and shutil.which("promtool"), "needs Debian's prometheus: run `make setup`"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "data.om").write_text(text)
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(tmp / "data.om"), str(tmp / "tsdb")],
        check=True,
        capture_output=True,
    )
    (tmp / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("prometheus did not become ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
