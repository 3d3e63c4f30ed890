"""The `llmops` front door: every command is listed, and each imports only what it uses.

`llmops.cli.COMMANDS` names each command's module and help line, so `llmops --help`
imports no command module and `llmops COMMAND` imports COMMAND's alone.
Proves: the table matches what each module registers (names and help lines), so it cannot
drift from the modules; the installed console script, run in a fresh environment with
PYTHONVERBOSE (python's own log of every module it loads, importlib's included), loads no
command module and none of the heavy libraries for `--help`, only its own command's module
for `registry validate --no-sizing`, and `--help` lists every command.
Cannot prove: how long an import takes on another machine (benchmarks/bench_cli.py measures
that against its goals).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.cli import COMMANDS, build_parser

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LLMOPS = Path(sys.executable).parent / "llmops"
HEAVY = (
    "torch",
    "transformers",
    "scipy",
    "statsmodels",
    "pandas",
    "numpy",
    "evidently",
    "lm_eval",
    "sagemaker",
    "boto3",
    "pulumi",
    "presidio_analyzer",
    "httpx",
)


def _registered(module: str) -> dict[str, str | None]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module).add_parser(sub)
    return {action.dest: action.help for action in sub._choices_actions}


@pytest.mark.parametrize("module", sorted({module for module, _ in COMMANDS.values()}))
def test_the_command_table_matches_what_each_module_registers(module: str) -> None:
    listed = {name: help_line for name, (owner, help_line) in COMMANDS.items() if owner == module}
    assert _registered(module) == listed


def test_a_modules_commands_are_listed_together() -> None:
    """`build_parser` registers a module's commands where its first one is listed: they must be adjacent."""
    owners = [module for module, _ in COMMANDS.values()]
    groups = [m for i, m in enumerate(owners) if i == 0 or owners[i - 1] != m]
    assert len(groups) == len(set(groups))


def test_the_full_parser_and_the_lazy_one_offer_the_same_commands() -> None:
    def names(parser: argparse.ArgumentParser) -> list[str]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return list(sub.choices)

    assert names(build_parser()) == names(build_parser([])) == list(COMMANDS)


def _imported(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", "PYTHONVERBOSE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([str(LLMOPS), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    modules = set(re.findall(r"^import '([\w.]+)' #", result.stderr, re.M))
    assert "llmops.cli" in modules, "no import log: PYTHONVERBOSE was not honoured"
    return result, modules


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    result, modules = _imported("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", result.stdout, re.M), f"--help does not list {name}"
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy
    assert not modules & {module for module, _ in COMMANDS.values()}


def test_a_command_imports_its_own_module_only() -> None:
    result, modules = _imported("registry", "validate", "--no-sizing")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "llmops.commands" in modules
    assert not sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not modules & ({module for module, _ in COMMANDS.values()} - {"llmops.commands"})
