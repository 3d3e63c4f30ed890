"""The installed `llmops` console script and `make`, called as a user calls them from a fresh shell.

Every command runs as a subprocess of `.venv/bin/llmops` with the environment of a fresh
login shell: HOME and PATH=/usr/bin:/bin only, no `scripts/env.sh` (so no LLMOPS_ROOT, no
`bin/` on PATH, no PULUMI_* or HF_HUB_OFFLINE), from the root of a throwaway repository
holding this checkout's files and from its `models/` folder.
Proves: every row of the README's "Everyday commands" table that needs no cloud account
(and `--help` of each) exits as documented with no traceback; a stack that does not exist
is one line naming it and the command that creates it, for every command that reads a
stack; a deployed stack's outputs are read through the repository's own engine (`eval
run --stack`, `lineage --stack`, `outputs`); `promote`/`history`/`rollback` edit and
revert the registry; `make preview STACK=dev` changes no committed file.
Cannot prove: what needs a cloud account (an AWS stack's preview, drift on AWS). The
deployed stack is imported into the engine's backend with the outputs `make up` writes
(an artifact trained here for a few steps, its lineage), not deployed by `make up`, which
trains and serves for minutes; what `make up` writes is tests/engine's subject.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.engine import engine_env, pulumi_binary
from tests.gitops.conftest import GIT_ENV
from tests.support.project import copy_project

pytestmark = [pytest.mark.gitops, pytest.mark.timeout(3600)]

WHERE = ["", "models"]  # the repository root and a subfolder
BIG = "llama-3-1-8b-instruct"


def fresh_env(home: Path) -> dict[str, str]:
    """A fresh login shell's environment: a HOME (whose git knows who commits) and the system PATH."""
    return {"HOME": str(home), "PATH": "/usr/bin:/bin"}


def git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout


def repository(dest: Path) -> Path:
    """A git repository holding this checkout's files (tracked and untracked, not ignored) in two
    commits, the second an edit of a model (so `plan` has a range), with `.venv` and `bin/` linked."""
    root = copy_project(dest).root
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the checkout")
    path = root / "models" / f"{BIG}.yaml"
    path.write_text(path.read_text().replace("max_replicas: 6", "max_replicas: 5"))
    git(root, "commit", "-q", "-am", f"{BIG}: prod max_replicas 5")
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("home")
    (path / ".gitconfig").write_text("[user]\n\tname = Model Owner\n\temail = owner@example.com\n")
    return path


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return repository(tmp_path_factory.mktemp("console") / "repo")


def llmops(
    root: Path, home: Path, *args: str, where: str = "", timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / ".venv" / "bin" / "llmops"), *args],
        cwd=root / where,
        env=fresh_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"


def ran(result: subprocess.CompletedProcess[str], status: int) -> str:
    """stdout, once the command exited with `status` and no traceback."""
    assert result.returncode == status, explain(result)
    assert "Traceback" not in result.stderr, explain(result)
    return result.stdout


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a command that failed as a user error (exit 1)."""
    ran(result, 1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmops: "), explain(result)
    return lines[0]


# --------------------------------------------------------------------------- every README row

HELP = [
    [],
    ["registry", "validate"],
    ["size"],
    ["cost"],
    ["plan"],
    ["promote"],
    ["train", "adopt"],
    ["data", "validate"],
    ["lineage"],
    ["monitor", "drift"],
    ["experiment", "report"],
    ["experiment", "advance"],
    ["history"],
    ["rollback"],
    ["eval", "run"],
    ["model-card"],
    ["outputs"],
    ["stacks"],
    ["migrate-stacks"],
    ["ci", "policy"],
    ["ci", "select"],
]


@pytest.mark.parametrize("command", HELP, ids=lambda c: " ".join(c) or "llmops")
def test_help_of_each_command(repo: Path, home: Path, command: list[str]) -> None:
    out = ran(llmops(repo, home, *command, "--help"), 0)
    assert out.startswith(f"usage: llmops {' '.join(command)}".rstrip())


@pytest.mark.parametrize("where", WHERE)
def test_the_registry_validates(repo: Path, home: Path, where: str) -> None:
    assert "registry OK" in ran(llmops(repo, home, "registry", "validate", where=where), 0)
    one = str(Path("tiny-chat.yaml") if where == "models" else Path("models/tiny-chat.yaml"))
    assert "registry OK: 1 model file(s) valid" in ran(llmops(repo, home, "registry", "validate", one, where=where), 0)


@pytest.mark.parametrize("where", WHERE)
def test_size_and_cost(repo: Path, home: Path, where: str) -> None:
    sized = json.loads(ran(llmops(repo, home, "size", BIG, "--json", where=where), 0))
    assert sized["parameters"] > 7e9, sized
    assert "prod" in ran(llmops(repo, home, "cost", where=where), 0)
    assert "prod" in ran(llmops(repo, home, "cost", "--stack", "prod", where=where), 0)


@pytest.mark.parametrize("where", WHERE)
def test_plan_names_the_stacks_a_change_touches(repo: Path, home: Path, where: str) -> None:
    out = ran(llmops(repo, home, "plan", "--base", "HEAD~1", where=where), 0)
    assert "prod" in out and BIG in out, out


@pytest.mark.parametrize("where", WHERE)
def test_data_validate_and_registry_lineage(repo: Path, home: Path, where: str) -> None:
    ran(llmops(repo, home, "data", "validate", where=where), 0)
    report = json.loads(ran(llmops(repo, home, "data", "validate", "tiny-chat-corpus", "--json", where=where), 0))
    assert report, report
    assert "endpoint  tiny-chat version" in ran(llmops(repo, home, "lineage", "tiny-chat", where=where), 0)


@pytest.mark.parametrize("where", WHERE)
def test_history_and_the_model_card(repo: Path, home: Path, where: str) -> None:
    assert "tiny-chat" in ran(llmops(repo, home, "history", "--stack", "local", where=where), 0)
    ran(llmops(repo, home, "model-card", "tiny-chat", "--check", where=where), 0)


@pytest.mark.parametrize("where", WHERE)
def test_drift_of_a_stack_that_captured_nothing(repo: Path, home: Path, where: str) -> None:
    result = llmops(repo, home, "monitor", "drift", "--stack", "local", "--model", "tiny-chat", where=where)
    assert "Traceback" not in result.stderr and result.returncode in (0, 1), explain(result)
    assert "tiny-chat" in result.stdout + result.stderr, explain(result)


@pytest.mark.parametrize("where", WHERE)
def test_stacks_lists_an_environment_and_refuses_what_is_not_one(repo: Path, home: Path, where: str) -> None:
    assert ran(llmops(repo, home, "stacks", "local", where=where), 0).split() == ["local"]
    line = one_line(llmops(repo, home, "stacks", "prod.nope", where=where))
    assert "no stacks/Pulumi.prod.nope.yaml: name an environment's stack" in line, line


# Every command that reads a deployed stack, on the `local` stack this repository never deployed.
READS_A_STACK = [
    ["outputs", "--stack", "local"],
    ["lineage", "tiny-chat", "--stack", "local"],
    ["eval", "run", "tiny-chat", "--stack", "local", "--json"],
    ["experiment", "report", "--stack", "local"],
    ["experiment", "advance", "--stack", "local"],
    ["train", "adopt", "tiny-chat", "--stack", "local", "--version", "v9", "--write", "--commit"],
    ["migrate-stacks", "local"],
]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("command", READS_A_STACK, ids=lambda c: " ".join(c[:2]))
def test_a_stack_that_does_not_exist_is_one_line(repo: Path, home: Path, where: str, command: list[str]) -> None:
    head = git(repo, "rev-parse", "HEAD")
    line = one_line(llmops(repo, home, *command, where=where))
    assert "stack local does not exist" in line and "`make up STACK=local`" in line, line
    assert git(repo, "rev-parse", "HEAD") == head  # `experiment advance` committed nothing
    assert not git(repo, "status", "--porcelain")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("config:\n  llmops:target: [local\n", "stacks/Pulumi.local.yaml:3: not valid YAML"),
        ("config:\n  llmops:target: nope\n", "stacks/Pulumi.local.yaml: llmops:target: Input should be"),
    ],
    ids=["yaml", "settings"],
)
def test_a_broken_stack_file_is_a_located_error(tmp_path: Path, home: Path, text: str, expected: str) -> None:
    root = repository(tmp_path / "repo")
    (root / "stacks" / "Pulumi.local.yaml").write_text(text)
    for command in (["eval", "run", "tiny-chat", "--stack", "local", "--json"], ["history", "--stack", "local"]):
        result = llmops(root, home, *command)
        ran(result, 1)
        assert result.stderr.startswith(f"llmops: {expected}"), explain(result)


def test_a_gated_model_on_a_stack_without_its_token_is_a_located_error(tmp_path: Path, home: Path) -> None:
    """The shipped Llama and Mistral versions are gated; a stack file that names no token secret
    stops `registry validate` and the offline preview (`ci policy`) at each gated version's line."""
    root = repository(tmp_path / "repo")
    stack = root / "stacks" / "Pulumi.staging.yaml"
    stack.write_text(stack.read_text().replace("  llmops:hfTokenSecret: llmops/hf-token\n", ""))
    git(root, "commit", "-qam", "staging names no token")
    fix = "set `llmops:hfTokenSecret` in stacks/Pulumi.staging.yaml"
    validate = llmops(root, home, "registry", "validate")
    located = [line for line in ran(validate, 1).splitlines() if fix in line]
    big = (root / "models" / "llama-3-1-70b-instruct.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(big, 1) if "gated: true" in text)
    assert located[0].startswith(f"models/llama-3-1-70b-instruct.yaml:{line}: versions.v1.huggingface.gated: v1 ")
    assert {line.split(":")[0] for line in located} == {
        "models/llama-3-1-70b-instruct.yaml",
        "models/llama-3-1-8b-instruct.yaml",
        "models/mistral-7b-instruct.yaml",
    }
    preview = llmops(root, home, "ci", "policy", "--stack", "staging")
    ran(preview, 1)
    assert located[0] in preview.stderr.splitlines(), explain(preview)
    assert not git(root, "status", "--porcelain")  # nothing written


# --------------------------------------------------------------------------- promote, history, rollback


@pytest.mark.parametrize("where", WHERE)
def test_promote_then_rollback(tmp_path: Path, home: Path, where: str) -> None:
    root = repository(tmp_path / "repo")
    path = root / "models" / f"{BIG}.yaml"
    before = path.read_text()
    out = ran(llmops(root, home, "promote", BIG, "--version", "v2", "--to", "staging", "--commit", where=where), 0)
    promoted = yaml.safe_load(path.read_text())["deployments"]["staging"]["variants"]
    assert promoted == [{"version": "v2", "weight": 100}], out
    assert "# The general-purpose assistant model" in path.read_text()  # comments kept
    assert not git(root, "status", "--porcelain") and "staging" in git(root, "log", "-1", "--format=%s")
    assert "v2 100%" in ran(llmops(root, home, "history", "--stack", "staging", where=where), 0)
    ran(llmops(root, home, "rollback", "--stack", "staging", where=where), 0)
    assert path.read_text() == before
    assert not git(root, "status", "--porcelain")


# --------------------------------------------------------------------------- a deployed stack

STACK = "console"


def _deploy_outputs(root: Path, env: dict[str, str], outputs: dict[str, Any]) -> None:
    """Create stack STACK in the repository's own backend, holding `outputs` as `make up` leaves them."""
    settings = {"llmops:target": "local", "llmops:environment": "local", "llmops:policy": {"enforcement": "mandatory"}}
    (root / "stacks" / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": settings}, sort_keys=False))
    pulumi = [pulumi_binary(root), "--non-interactive"]
    subprocess.run([*pulumi, "stack", "init", STACK], cwd=root, env=env, check=True, capture_output=True)
    exported = json.loads(
        subprocess.run(
            [*pulumi, "stack", "export", "--stack", STACK], cwd=root, env=env, check=True, capture_output=True
        ).stdout
    )
    exported["deployment"]["resources"] = [
        {
            "urn": f"urn:pulumi:{STACK}::llmops::pulumi:pulumi:Stack::llmops-{STACK}",
            "custom": False,
            "type": "pulumi:pulumi:Stack",
            "outputs": outputs,
        }
    ]
    state = root / ".state" / "console-export.json"
    state.write_text(json.dumps(exported))
    subprocess.run(
        [*pulumi, "stack", "import", "--stack", STACK, "--file", str(state)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )


def test_a_deployed_stack_is_read_through_the_repositorys_engine(tmp_path: Path, home: Path) -> None:
    from llmops.local.store import STORE_DIR, ArtifactStore, file_sha256
    from llmops.local.train import train

    root = repository(tmp_path / "repo")
    # A few-step artifact of the registry's model, in the store `make up` trains into.
    corpus = root / "models" / "data" / "tiny-chat-corpus" / "train.txt"
    quick = {"steps": 8, "batch_size": 4, "seq_len": 32, "learning_rate": 0.01, "log_every": 2}
    out = tmp_path / "artifact"
    train(root / "models" / "configs" / "tiny-chat.json", corpus, file_sha256(corpus), quick, out, log=lambda _: None)
    store = ArtifactStore(root / STORE_DIR)
    sha = store.put(out)
    registry = json.loads(ran(llmops(root, home, "lineage", "tiny-chat", "--json"), 0))
    lineage = {**registry, "artifactSha256": sha, "artifactUri": store.uri(sha)}
    # The backend a fresh shell's command finds: the repository's own, with the documented dev passphrase.
    env = engine_env(root, base={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    _deploy_outputs(root, env, {"artifacts": {"tiny-chat": {"sha256": sha}}, "lineage": {"tiny-chat": lineage}})

    shown = ran(llmops(root, home, "outputs", "--stack", STACK), 0)
    assert json.loads(shown[: shown.index("\n}\n") + 2])["artifacts"]["tiny-chat"]["sha256"] == sha
    assert f"artifact  sha256 {sha}" in ran(
        llmops(root, home, "lineage", "tiny-chat", "--stack", STACK, where="models"), 0
    )
    measured = llmops(root, home, "eval", "run", "tiny-chat", "--stack", STACK, "--json", timeout=1800)
    assert "Traceback" not in measured.stderr and measured.returncode in (0, 1), explain(measured)
    verdicts = json.loads(measured.stdout)
    # Every gated suite was measured on the stack's artifact; the exit status says whether all passed.
    gated = {
        g["suite"] for g in yaml.safe_load((root / "models" / "tiny-chat.yaml").read_text())["compliance"]["evaluation"]
    }
    assert set(verdicts) == gated, verdicts
    passed = [m["passed"] for suite in verdicts.values() for m in suite.values()]
    assert measured.returncode == (0 if all(passed) else 1), explain(measured)
    # ...on the artifact the stack's outputs name, not one the registry's inputs would look up.
    records = [json.loads(p.read_text()) for p in (root / ".state" / "evaluations").glob("*.json")]
    assert {r["suite"] for r in records} == gated and {r["weights"] for r in records} == {sha}, records


# --------------------------------------------------------------------------- make preview


def test_make_preview_of_a_cloud_stack_rewrites_no_committed_file(tmp_path: Path, home: Path) -> None:
    """`make preview STACK=dev` fails here (no AWS backend), and must leave the clone exactly as committed.

    `-o setup` skips only the install step (`.venv` and `bin/` are this checkout's, linked);
    the preview recipe itself runs as `make` runs it."""
    root = repository(tmp_path / "repo")
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", "setup", "preview", "STACK=dev"],
        cwd=root,
        env=fresh_env(home),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode != 0, explain(result)  # no dev stack in this repository's backend
    assert "Traceback" not in result.stderr, explain(result)
    assert "pulumi stack init dev --secrets-provider awskms://alias/llmops-dev" in result.stderr, explain(result)
    assert git(root, "status", "--porcelain") == "", explain(result)
    assert not list((root / ".pulumi" / "state").rglob("dev.json*"))  # and created no dev stack
