"""Debian's headless Chromium, driven over the DevTools protocol (websockets), for page checks.

`load(url)` opens the page in a fresh browser, waits for its load event and for
plotly to finish drawing, and returns what a person would see: console errors and
uncaught exceptions (failed resource loads included, so a chart library fetched from
the network fails here), the page text, each panel's drawn series (SVG paths with a
non-empty `d`), and a PNG screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"  # git-ignored

# Each panel (section[data-panel]): its text and how many plotly traces drew a visible path or bar.
_PANELS_JS = """
JSON.stringify(Array.from(document.querySelectorAll('section[data-panel]')).map(s => ({
  key: s.dataset.panel,
  text: s.innerText,
  drawn: Array.from(s.querySelectorAll('.scatterlayer .trace path.js-line, .scatterlayer .trace path.point,'
    + ' .barlayer .trace path, .errorbars path'))
    .filter(p => (p.getAttribute('d') || '').length > 4 && !(p.getAttribute('d') || '').includes('M0,0Z')).length,
  charts: s.querySelectorAll('.js-plotly-plot').length,
})))
"""


def chromium() -> str | None:
    """Debian's chromium (`make test-packages`), or the Chrome that CI runner images carry."""
    return next((p for name in ("chromium", "google-chrome") if (p := shutil.which(name))), None)


@dataclass
class Page:
    url: str
    errors: list[str] = field(default_factory=list)
    text: str = ""
    panels: dict[str, dict[str, Any]] = field(default_factory=dict)
    screenshot: Path | None = None


class _Session:
    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        mid = next(self.ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    def wait_event(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == name for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
        return out


@contextlib.contextmanager
def _browser() -> Iterator[str]:
    binary = chromium()
    assert binary, "no `chromium`: run `make test-packages` (Debian package chromium)"
    # A zombie helper cannot write, but one the group kill missed could: never fail a test on cleanup.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1400,1800", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: its helpers are stopped with it
        )  # fmt: skip
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.is_file() or not port_file.read_text().strip():
                assert time.monotonic() < deadline and proc.poll() is None, "chromium did not start"
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            yield f"http://127.0.0.1:{port}"
        finally:
            # Chromium's helper processes (renderer, crashpad) may still write into the profile
            # after the browser exits, which made the profile's removal fail: stop the whole group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            _wait_group_gone(proc.pid)


def _wait_group_gone(pgid: int, timeout: float = 3.0) -> None:
    """Wait until no process of the group is left (SIGKILL the rest after `timeout`; an unreaped
    zombie keeps the group alive but writes nothing)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.1)


def load(url: str, screenshot: str | None = None, settle: float = 1.0) -> Page:
    """Open `url` headless; return its errors, text, panels and (optionally) a screenshot under ARTIFACTS."""
    import httpx

    with _browser() as devtools:
        target = httpx.put(f"{devtools}/json/new?about:blank", timeout=10).json()
        with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
            s = _Session(ws)
            for domain in ("Page", "Runtime", "Log"):
                s.call(f"{domain}.enable")
            s.call("Page.navigate", url=url)
            s.wait_event("Page.loadEventFired")
            time.sleep(settle)  # plotly draws on load; let the last frame land
            page = Page(url)
            page.text = str(
                s.call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)["result"].get(
                    "value", ""
                )
            )
            panels = s.call("Runtime.evaluate", expression=_PANELS_JS, returnByValue=True)["result"].get("value", "[]")
            page.panels = {p["key"]: p for p in json.loads(panels)}
            if screenshot:
                shot = s.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot = ARTIFACTS / f"{screenshot}.png"
                page.screenshot.write_bytes(base64.b64decode(shot["data"]))
            page.errors = s.errors()
            return page
