"""Sizing reads the configs the registry ships and asks the hub only for a model that ships none, once.

Runs the installed console script (`.venv/bin/llmops`) in a fresh environment, as a plain
shell would: no HF_HUB_OFFLINE (the suite's own setting is not passed on) and HF_ENDPOINT at
a local HTTP server that records every connection made to it, where a machine with internet
would reach huggingface.co.
Proves: `registry validate` of the shipped registry, with an empty sizing cache (so every
config is really loaded, by transformers), connects nowhere, and run again loads neither
transformers nor torch (the kept results answer); a model whose config file is
missing costs exactly one request (no retries), whether it fails or succeeds, and the fetched
config is kept, so a second run connects nowhere; offline, such a model is a located error.
Cannot prove: how the real hub answers (none is reachable here); the served JSON is the
shipped copy of the same config.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LLMOPS = Path(sys.executable).parent / "llmops"
MODEL = "mistral-7b-instruct"
SHIPPED = "configs/mistral-7b-v0.3.json"
REVISION = "e0bc86c23ce5aae1db576c8cca6f06f1f73af2db"
CONFIG_URL_PATH = f"/mistralai/Mistral-7B-Instruct-v0.3/resolve/{REVISION}/config.json"


class Hub(http.server.ThreadingHTTPServer):
    """A stand-in hub: records each connection and each request path; answers `status`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.paths: list[str] = []
        self.status = 200
        self.body = (REPO / "models" / SHIPPED).read_bytes()

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Hub

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = self.server.body if self.server.status == 200 else b"{}"
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = Hub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def llmops(*args: str, tmp: Path, root: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script in a fresh environment; sizing caches and the hub's home in `tmp`."""
    fresh = {
        "HOME": os.environ["HOME"],
        "PATH": "/usr/bin:/bin",
        "HF_HOME": str(tmp / "hf-home"),
        "LLMOPS_SIZING_CACHE": str(tmp / "sizing" / "parameters.json"),
        **env,
    }
    if root is not None:
        fresh["LLMOPS_ROOT"] = str(root)
    return subprocess.run([str(LLMOPS), *args], cwd=REPO, env=fresh, capture_output=True, text=True, timeout=600)


def test_validate_of_the_shipped_registry_connects_nowhere(hub: Hub, tmp_path: Path) -> None:
    result = llmops("registry", "validate", tmp=tmp_path, HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registry OK" in result.stdout
    assert (tmp_path / "sizing" / "results.json").is_file()  # it did size, from the shipped configs
    assert hub.connections == 0, hub.paths

    # Warm: the kept results answer, so neither transformers nor torch is loaded (python's own import log).
    warm = llmops("registry", "validate", tmp=tmp_path, HF_ENDPOINT=hub.url, PYTHONVERBOSE="1")
    assert warm.returncode == 0 and "registry OK" in warm.stdout
    loaded = set(re.findall(r"^import '([\w.]+)' #", warm.stderr, re.M))
    assert "llmops.sizing.result_cache" in loaded and not {"torch", "transformers"} & loaded
    assert hub.connections == 0


@pytest.fixture
def unshipped(tmp_path: Path) -> Path:
    """A checkout whose mistral entry names a config file that is not there."""
    root = tmp_path / "root"
    for part in ("models", "stacks"):
        shutil.copytree(REPO / part, root / part)
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    entry = root / "models" / f"{MODEL}.yaml"
    entry.write_text(entry.read_text().replace(SHIPPED, "configs/not-shipped.json"))
    return root


def test_a_model_without_a_shipped_config_is_a_located_error_offline(hub: Hub, unshipped: Path, tmp_path: Path) -> None:
    result = llmops("registry", "validate", tmp=tmp_path, root=unshipped, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="1")
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "HF_HUB_OFFLINE is set" in line]
    assert lines and all(line.startswith(f"models/{MODEL}.yaml:") and "source.config" in line for line in lines)
    assert "models/configs/not-shipped.json is not in the repository" in lines[0]
    assert hub.connections == 0


def test_a_model_without_a_shipped_config_asks_the_hub_once(hub: Hub, unshipped: Path, tmp_path: Path) -> None:
    hub.status = 503  # a hub in trouble: one request, then a clear message (no backoff adding up to minutes)
    failed = llmops("size", MODEL, tmp=tmp_path, root=unshipped, HF_ENDPOINT=hub.url)
    assert failed.returncode == 1
    assert "not-shipped.json is not in the repository; fetching" in failed.stderr and "503" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert hub.paths == [CONFIG_URL_PATH] and hub.connections == 1

    hub.status = 200
    sized = llmops("size", MODEL, "--json", tmp=tmp_path, root=unshipped, HF_ENDPOINT=hub.url)
    assert sized.returncode == 0, sized.stderr
    assert '"parameters": 7248023552' in sized.stdout  # Mistral 7B v0.3, counted from the fetched config
    assert hub.paths == [CONFIG_URL_PATH, CONFIG_URL_PATH] and hub.connections == 2

    again = llmops("size", MODEL, "--json", tmp=tmp_path, root=unshipped, HF_ENDPOINT=hub.url)
    assert again.returncode == 0, again.stderr
    assert hub.connections == 2  # the pinned revision's config was kept
