"""Running `pulumi preview` and `pulumi up` for CI through the Automation API (`pulumi.automation`).

A `LocalWorkspace` on the checkout runs this checkout's engine (`bin/pulumi`, with the
environment `llmops.engine.engine_env` builds, as `make` runs it) under the policy pack
and its per-environment configuration. Results come from the typed engine events
(`on_event`); the console text is kept for logs and the pull request comment.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml
from pulumi import automation as auto

from llmops.ci.errors import CiError
from llmops.ci.results import RunResult
from llmops.layout import is_model_stack, parse_model_stack

DEFAULT_POLICY_PACK = "policies/pack"
DEFAULT_POLICY_CONFIG_DIR = "policies/config"


@dataclass(frozen=True)
class Engine:
    """How this checkout runs pulumi: where, with which environment and policy pack."""

    root: Path
    env: dict[str, str]
    policy_pack: str
    policy_config_dir: str
    timeout: float | None = None  # seconds per operation; the engine is stopped past it
    stream: bool = True  # echo pulumi's output while it runs (CI logs)

    def workspace(self, secrets_provider: str | None = None) -> auto.LocalWorkspace:
        """The checkout's workspace; `secrets_provider` is what a stack it creates encrypts secrets with."""
        from llmops.engine import pulumi_binary

        binary = Path(pulumi_binary(self.root))
        # The Python host runs the program in the project's virtualenv, whatever the caller's is.
        env = {**self.env, "VIRTUAL_ENV": str(self.root / ".venv")}
        return auto.LocalWorkspace(
            work_dir=str(self.root),
            pulumi_home=env.get("PULUMI_HOME"),
            env_vars=env,
            secrets_provider=secrets_provider,
            pulumi_command=auto.PulumiCommand(root=str(binary.parent.parent), skip_version_check=True),
        )

    def policy_configs(self, environment: str | None) -> list[str]:
        if environment is None:
            return []
        config = Path(self.policy_config_dir) / f"{environment}.json"
        if not (self.root / config).is_file():
            raise CiError(f"no policy configuration {config} for environment {environment!r}")
        return [str(config)]

    def select(self, stack: str, *, create_with: str | None = None, create: bool = True) -> auto.Stack:
        """Select `stack`; a stack of this machine (target local or kube) is created on first use
        (unless `create` is off), a cloud one only when the caller names its secrets provider (a review stack takes its
        environment's; a guess would be wrong, and `pulumi stack init` rewrites the stack file)."""
        from llmops.ci.selection import stack_targets
        from llmops.engine import creation_hint

        workspace = self.workspace()
        if is_model_stack(stack):
            return self._select_model_stack(stack, workspace, create)
        try:
            return auto.Stack.select(stack, workspace)
        except auto.StackNotFoundError:
            if create_with is not None:
                return auto.Stack.create(stack, self.workspace(secrets_provider=create_with))
            if create and stack_targets(self.root).get(stack) in ("local", "kube"):
                return auto.Stack.create(stack, workspace)
            backend = self.env.get("PULUMI_BACKEND_URL", "the backend")
            raise CiError(f"stack {stack} does not exist in {backend}: {creation_hint(stack, self.root)}") from None

    def _select_model_stack(self, stack: str, workspace: auto.LocalWorkspace, create: bool) -> auto.Stack:
        """A model stack (llmops.layout): created on first use with its environment stack's secrets
        provider. Its stack file is not in git (its settings are its environment's), so on a fresh
        checkout the file's secrets keys are written back from the stack's own state first:
        without them the engine would make a new key and could not read the secrets it holds."""
        ref = parse_model_stack(stack)
        assert ref is not None
        settings_file = self.root / "stacks" / f"Pulumi.{ref.platform}.yaml"
        if not settings_file.is_file():
            raise CiError(f"stack {stack}: no stacks/{settings_file.name} holds its settings")
        stack_file = self.root / "stacks" / f"Pulumi.{stack}.yaml"
        names = [s.name.rsplit("/", 1)[-1] for s in workspace.list_stacks()]
        if stack in names:
            if not stack_file.is_file():
                write_secrets_keys(stack_file, workspace.export_stack(stack).deployment)
            return auto.Stack.select(stack, workspace)
        if not create:
            backend = self.env.get("PULUMI_BACKEND_URL", "the backend")
            raise CiError(f"stack {stack} does not exist in {backend}")
        provider = (yaml.safe_load(settings_file.read_text(encoding="utf-8")) or {}).get("secretsprovider")
        return auto.Stack.create(stack, self.workspace(secrets_provider=provider) if provider else workspace)

    def run(self, command: str, stack: str, environment: str | None, **options: Any) -> RunResult:
        """`pulumi preview|up` of one stack under the policy pack, read back from its engine events."""
        target = self.select(stack)
        result = RunResult(stack, command, 0, "")
        lines: list[str] = []

        def on_output(line: str) -> None:
            lines.append(line)
            if self.stream:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

        operation = target.preview if command == "preview" else target.up
        kwargs = dict(
            policy_packs=[self.policy_pack],
            policy_pack_configs=self.policy_configs(environment),
            color="never",
            suppress_progress=True,
            on_output=on_output,
            on_event=result.record,
            **options,
        )
        try:
            self._within_timeout(lambda: operation(**kwargs), command)
        except auto.CommandError as exc:
            result.returncode = _exit_code(exc)
        except _TimedOut:
            lines.append(f"llmops ci: pulumi {command} timed out after {self.timeout} s")
            result.returncode = 124
        result.output = "\n".join(lines) + ("\n" if lines else "")
        return result

    def preview(self, stack: str, environment: str | None, *, refresh: bool = False) -> RunResult:
        return self.run(
            "preview", stack, environment, diff=True, refresh=refresh or None, expect_no_changes=refresh or None
        )

    def up(self, stack: str, environment: str | None) -> RunResult:
        # The preview just before has checked the policies; the pack runs again during the update.
        return self.run("up", stack, environment)

    def destroy(self, stack: str) -> RunResult:
        """`pulumi destroy` of an existing stack (raises `auto.StackNotFoundError` when there is none)."""
        target = auto.Stack.select(stack, self.workspace())
        result = RunResult(stack, "destroy", 0, "")
        lines: list[str] = []

        def destroy() -> None:
            target.destroy(color="never", suppress_progress=True, on_output=lines.append, on_event=result.record)

        try:
            self._within_timeout(destroy, "destroy")
        except auto.CommandError as exc:
            result.returncode = _exit_code(exc)
        except _TimedOut:
            lines.append(f"llmops ci: pulumi destroy timed out after {self.timeout} s")
            result.returncode = 124
        result.output = "\n".join(lines) + ("\n" if lines else "")
        return result

    def _within_timeout(self, operation: Callable[[], Any], command: str) -> None:
        """Run `operation`; past `timeout`, stop the engine processes it started (the Automation API
        has no timeout of its own) and raise _TimedOut once they have exited."""
        if self.timeout is None:
            operation()
            return
        outcome: list[BaseException | None] = []

        def target() -> None:
            try:
                operation()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=target, name=f"pulumi-{command}", daemon=True)
        before = _engine_children()
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            for proc in _engine_children() - before:
                proc.terminate()
            worker.join(30)
            raise _TimedOut
        if outcome and outcome[0] is not None:
            raise outcome[0]


class _TimedOut(Exception):
    pass


def _engine_children() -> set[psutil.Process]:
    """The `pulumi` processes this process started (the Automation API runs the CLI as a child)."""
    found = set()
    for proc in psutil.Process().children(recursive=False):
        try:
            if Path(proc.exe()).name == "pulumi":
                found.add(proc)
        except psutil.Error:
            continue
    return found


_CODE = re.compile(r"^\s*code: (-?\d+)", re.MULTILINE)


def _exit_code(exc: auto.CommandError) -> int:
    """The CLI's exit status, which the Automation API keeps only in the error's text."""
    m = _CODE.search(str(exc))
    return int(m.group(1)) if m and int(m.group(1)) != 0 else 1


def engine_from_args(args: Any, root: Path) -> Engine:
    from llmops.engine import engine_env

    return Engine(
        root=root,
        env=engine_env(root),
        policy_pack=args.policy_pack,
        policy_config_dir=args.policy_config_dir,
        timeout=args.timeout,
        stream=not getattr(args, "quiet", False),
    )


def write_secrets_keys(stack_file: Path, deployment: Mapping[str, Any] | None) -> None:
    """The stack file's secrets keys, as the engine wrote them at `stack init`, from its state's
    secrets provider: a passphrase's salt, or a KMS provider's URL and encrypted data key."""
    provider = (deployment or {}).get("secrets_providers") or {}
    state = provider.get("state") or {}
    if provider.get("type") == "passphrase" and state.get("salt"):
        keys = {"encryptionsalt": state["salt"]}
    elif provider.get("type") == "cloud" and state.get("url"):
        keys = {"secretsprovider": state["url"], "encryptedkey": state.get("encryptedkey", "")}
    else:
        return  # no secrets yet, or a service-managed provider: nothing to restore
    header = "# A model stack's secrets keys, restored from its state; its settings are its environment's.\n"
    stack_file.write_text(header + yaml.safe_dump(keys, sort_keys=False), encoding="utf-8")
