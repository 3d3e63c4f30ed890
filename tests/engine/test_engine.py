"""The engine built by `make setup` (bin/pulumi + the Python language host + shims) really runs.

Proves: preview, up, stack output, config and secrets (passphrase provider), update and
destroy work through the CLI and through the Automation API against a file backend,
and that a dynamic provider (the mechanism of the whole local target) creates,
updates and deletes a real file. Cannot prove anything about cloud providers: no
provider plugin is installed or reachable here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pulumi import automation as auto

from llmops.engine import engine_env, pulumi_binary
from tests.support.project import REPO

pytestmark = pytest.mark.engine

PROGRAM = Path(__file__).parent / "programs" / "minimal"
PINNED_CLI = "v3.274.1"


@pytest.fixture
def program(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    work = tmp_path / "program"
    shutil.copytree(PROGRAM, work)
    (work / ".venv").symlink_to(REPO / ".venv")
    env = engine_env(REPO, backend_url=f"file://{tmp_path / 'state'}")
    (tmp_path / "state").mkdir()
    env["PULUMI_CONFIG_PASSPHRASE"] = "engine-test"
    return work, env


def _pulumi(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [pulumi_binary(REPO), *args, "--non-interactive"],
        cwd=work,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pulumi {args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_built_cli_is_the_pinned_version() -> None:
    out = subprocess.run([pulumi_binary(REPO), "version"], capture_output=True, text=True, check=True).stdout.strip()
    assert out == PINNED_CLI
    for shim in ("pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python"):
        assert (REPO / "bin" / shim).is_file(), f"{shim} missing from bin/"


def test_cli_preview_up_output_update_destroy(program: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    work, env = program
    target = tmp_path / "greeting.txt"
    _pulumi(work, env, "stack", "init", "throwaway", "--secrets-provider", "passphrase")
    _pulumi(work, env, "config", "set", "path", str(target))
    _pulumi(work, env, "config", "set", "--secret", "token", "s3cr3t-value")

    preview = _pulumi(work, env, "preview")
    assert "+ 2 to create" in preview.stdout
    assert not target.exists(), "preview must not change anything"

    _pulumi(work, env, "up", "--yes")
    assert target.read_text() == "hello"
    outputs = json.loads(_pulumi(work, env, "stack", "output", "--json").stdout)
    assert outputs["path"] == str(target)
    assert outputs["token"] == "[secret]"
    shown = json.loads(_pulumi(work, env, "stack", "output", "--json", "--show-secrets").stdout)
    assert shown["token"] == "s3cr3t-value"
    state = (tmp_path / "state").rglob("throwaway.json")
    assert all("s3cr3t-value" not in p.read_text() for p in state), "secret leaked into the state file"

    _pulumi(work, env, "config", "set", "content", "changed")
    _pulumi(work, env, "up", "--yes")
    assert target.read_text() == "changed"

    _pulumi(work, env, "destroy", "--yes")
    assert not target.exists()
    _pulumi(work, env, "stack", "rm", "--yes")


def test_automation_api_round_trip(program: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    work, env = program
    target = tmp_path / "auto.txt"
    stack = auto.create_or_select_stack(
        stack_name="auto-throwaway",
        work_dir=str(work),
        opts=auto.LocalWorkspaceOptions(
            env_vars=env,
            pulumi_command=auto.PulumiCommand(root=str(REPO), skip_version_check=True),
        ),
    )
    stack.set_config("path", auto.ConfigValue(str(target)))
    stack.set_config("token", auto.ConfigValue("x", secret=True))
    preview = stack.preview()
    assert preview.change_summary.get("create") == 2
    result = stack.up()
    assert result.summary.result == "succeeded"
    assert stack.outputs()["content"].value == "hello"
    assert target.read_text() == "hello"
    stack.destroy()
    assert not target.exists()
    stack.workspace.remove_stack("auto-throwaway")
