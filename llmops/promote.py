"""`llmops promote`: move an environment's traffic to a model version, in the registry file.

A plain promotion serves the version alone (100 %) in the environment; with
`--weight N` the version becomes a canary taking N % beside the version that
serves most of the traffic now. The result is written as the environment's
`deployments.<env>.variants` override, so other environments keep theirs.

The file is edited with ruamel.yaml's round-trip mode: comments, key order,
quoting and the rest of the file stay as they were, and the printed diff shows
only the promotion. The result must pass the registry's validation (including
the production checks: pinned weights, a passed evaluation gate) or nothing is
written. A variant names a version only: the version must be declared, with its
weights, under the file's `versions`, or the promotion is refused at that line.
"""

from __future__ import annotations

import argparse
import difflib
import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.tokens import CommentToken

from llmops import paths
from llmops.registry import validate
from llmops.settings import environments, load_all_stacks

# Registry files are written with 2-space mappings and sequences indented under their key.
MAPPING_INDENT, SEQUENCE_INDENT, SEQUENCE_DASH_OFFSET = 2, 4, 2


class PromotionError(Exception):
    """The promotion cannot be made as asked; nothing was written."""


class UndeclaredVersion(PromotionError):
    """The version is not declared under `versions`: located at that key's line of the file."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Promotion:
    model: str
    path: Path
    environment: str
    version: str
    weight: int
    before: str
    after: str
    notes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def message(self) -> str:
        canary = f" at {self.weight}%" if self.weight < 100 else ""
        return f"feat(models): promote {self.model} {self.version} to {self.environment}{canary}"

    def diff(self, display: str) -> str:
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=f"a/{display}",
            tofile=f"b/{display}",
        )
        return "".join(lines)


def round_trip_yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap long descriptions
    y.indent(mapping=MAPPING_INDENT, sequence=SEQUENCE_INDENT, offset=SEQUENCE_DASH_OFFSET)
    return y


def dump_yaml(tree: Any) -> str:
    out = io.StringIO()
    round_trip_yaml().dump(tree, out)
    return out.getvalue()


# --------------------------------------------------------------------------- comments
# ruamel keeps the comment lines that follow a block node on the deepest last entry
# before them (a mapping key's slot 2, a sequence item's slot 0), together with that
# entry's end-of-line comment. Replacing a subtree would drop them, so they are moved
# to the new subtree's last entry; the end-of-line part stays where it was.


def _tail_holder(container: Any, key: Any) -> tuple[Any, Any]:
    """The (container, key) whose comment slot holds the lines following `container[key]`."""
    value = container[key]
    while isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
        container, key = value, (list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1)
        value = container[key]
    return container, key


def _slot(container: CommentedBase) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _detach_following(container: Any, key: Any) -> str:
    """Take the comment lines after `container[key]`'s subtree off it; keep its end-of-line comment."""
    holder, hkey = _tail_holder(container, key)
    entry = holder.ca.items.get(hkey)
    slot = _slot(holder)
    token = entry[slot] if entry else None
    if token is None:
        return ""
    text: str = token.value
    eol, _, following = text.partition("\n") if not text.startswith("\n") else ("", "", text[1:])
    if eol:
        token.value = eol + "\n"
    else:
        entry[slot] = None
    return following


def _attach_following(container: Any, key: Any, following: str) -> None:
    if not following:
        return
    holder, hkey = _tail_holder(container, key)
    slot = _slot(holder)
    entry = holder.ca.items.setdefault(hkey, [None, None, None, None])
    token = entry[slot]
    if token is None:
        entry[slot] = CommentToken("\n" + following, CommentMark(0), None)
    else:
        token.value = token.value.rstrip("\n") + "\n" + following


# --------------------------------------------------------------------------- the edit


def _variant(version: str, weight: int) -> CommentedMap:
    item = CommentedMap()
    item["version"] = version
    item["weight"] = weight
    return item


def _check_declared(tree: CommentedMap, version: str) -> None:
    """A promotion names a version the file declares with its weights; nothing else serves."""
    versions = tree.get("versions")
    if not isinstance(versions, dict):
        raise UndeclaredVersion(1, "versions: the file declares no `versions` (version -> weights)")
    if version not in {str(v) for v in versions}:
        line = tree.lc.key("versions")[0] + 1 if isinstance(tree, CommentedMap) else 1
        declared = ", ".join(str(v) for v in versions) or "none"
        raise UndeclaredVersion(
            line,
            f"versions: version {version!r} is not declared (declared: {declared}): "
            "add it with its weights under `versions` first",
        )


def promote_text(text: str, environment: str, version: str, weight: int = 100) -> tuple[str, list[str]]:
    """The registry file `text` with `environment` promoted; plus notes for the user."""
    if not 1 <= weight <= 100:
        raise PromotionError(f"--weight must be 1..100, got {weight}")
    try:
        tree = round_trip_yaml().load(text)
    except YAMLError as exc:
        raise PromotionError(f"the file is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, CommentedMap) or not isinstance(tree.get("deployments"), CommentedMap):
        raise PromotionError("the file has no `deployments` mapping")
    notes: list[str] = []
    deployments: CommentedMap = tree["deployments"]
    serving = tree.get("serving") if isinstance(tree.get("serving"), CommentedMap) else CommentedMap()
    override = deployments.get(environment)
    if environment not in deployments:
        notes.append(f"{environment} did not deploy this model: it does now")
    current = (override.get("variants") if isinstance(override, CommentedMap) else None) or serving.get("variants")
    current = [v for v in current or [] if isinstance(v, dict)]
    _check_declared(tree, version)

    if weight == 100:
        variants = [_variant(version, 100)]
    else:
        others = [v for v in current if str(v.get("version")) != version]
        if not others:
            raise PromotionError(f"no version but {version} serves {environment}: nothing to run a canary beside")
        stable = max(others, key=lambda v: int(v.get("weight") or 0))  # first of the heaviest
        dropped = [str(v.get("version")) for v in others if v is not stable]
        if dropped:
            notes.append(f"the canary replaces {', '.join(dropped)} in {environment}")
        variants = [
            _variant(str(stable.get("version")), 100 - weight),
            _variant(version, weight),
        ]

    def pairs(items: list[Any]) -> list[tuple[str, int]]:
        return [(str(v.get("version")), int(v.get("weight") or 0)) for v in items]

    if environment in deployments and pairs(current) == pairs(variants):
        return text, [f"{environment} already serves {version} at {weight}%"]

    following = _detach_following(deployments, environment) if environment in deployments else ""
    override = _block_override(deployments, environment)
    old_seq = override.get("variants")
    if isinstance(old_seq, CommentedSeq):
        # Items this environment already had are reused, so their own comments stay.
        own = {str(v.get("version")): v for v in old_seq if isinstance(v, CommentedMap)}
        for i, item in enumerate(variants):
            kept = own.get(str(item["version"]))
            if kept is not None:
                kept["weight"] = item["weight"]
                variants[i] = kept
        seq_following = _detach_following(override, "variants")
    else:
        seq_following = ""
    seq = CommentedSeq(variants)
    if isinstance(old_seq, CommentedSeq) and old_seq.ca.comment:
        seq.ca.comment = old_seq.ca.comment  # comment lines between `variants:` and the first item
    override["variants"] = seq
    _attach_following(override, "variants", seq_following)
    _attach_following(deployments, environment, following)
    return dump_yaml(tree), notes


def _block_override(deployments: CommentedMap, environment: str) -> CommentedMap:
    """The environment's override as a block mapping: created, or rewritten from `env: {}`, `env:`
    or a flow mapping, keeping its other keys."""
    override = deployments.get(environment)
    if isinstance(override, CommentedMap) and override and not override.fa.flow_style():
        return override
    block = CommentedMap()
    block.update(override or {})
    if environment in deployments:
        deployments[environment] = block
        eol = (deployments.ca.items.get(environment) or [None] * 4)[2]
        if eol is not None:  # it sat after `{}`; now it follows `env:`, two spaces apart
            eol.column = deployments.lc.key(environment)[1] + len(environment) + 3
    else:
        deployments.insert(len(deployments), environment, block)
    return block


def set_override(text: str, environment: str, values: dict[str, Any]) -> str:
    """The registry file `text` with `deployments.<environment>.<key>` set to each value (a dict
    value is written as a flow mapping); comments and layout kept, as a promotion keeps them."""
    try:
        tree = round_trip_yaml().load(text)
    except YAMLError as exc:
        raise PromotionError(f"the file is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, CommentedMap) or not isinstance(tree.get("deployments"), CommentedMap):
        raise PromotionError("the file has no `deployments` mapping")
    deployments: CommentedMap = tree["deployments"]
    following = _detach_following(deployments, environment) if environment in deployments else ""
    override = _block_override(deployments, environment)
    for key, value in values.items():
        if isinstance(value, dict):
            value = CommentedMap(value)
            value.fa.set_flow_style()
        override[key] = value
    _attach_following(deployments, environment, following)
    return dump_yaml(tree)


def validate_text(root: Path, name: str, text: str) -> list[str]:
    """The registry problems `text` would have as `models/<name>`; the checkout is not touched."""
    return _validate_text(paths.models_dir(root), name, text, load_all_stacks(paths.stacks_dir(root)))


def promote(root: Path, model: str, environment: str, version: str, weight: int = 100) -> Promotion:
    """Compute and validate a promotion of `models/<model>.yaml`; writes nothing."""
    models_dir = paths.models_dir(root)
    path = models_dir / f"{model}.yaml"
    if not path.is_file():
        raise PromotionError(f"no registry file {path.relative_to(root)}")
    stacks = load_all_stacks(paths.stacks_dir(root))
    known = environments(stacks)
    if environment not in known:
        raise PromotionError(f"no stack deploys environment {environment!r} (known: {', '.join(sorted(known))})")
    before = path.read_text(encoding="utf-8")
    try:
        after, notes = promote_text(before, environment, version, weight)
    except UndeclaredVersion as exc:
        raise PromotionError(f"{path.relative_to(root)}:{exc.line}: {exc}") from None
    if after != before:
        problems = _validate_text(models_dir, path.name, after, stacks)
        if problems:
            raise PromotionError(
                "the promoted file would be invalid, nothing written:\n" + "\n".join(f"  {p}" for p in problems)
            )
    return Promotion(model, path, environment, version, weight, before, after, tuple(notes))


def _validate_text(models_dir: Path, name: str, text: str, stacks: Any) -> list[str]:
    """Validate `text` as `models/<name>` without touching the checkout: a scratch registry
    holding only this file, with the real configs beside it."""
    with tempfile.TemporaryDirectory(prefix="llmops-promote-") as tmp:
        scratch = Path(tmp) / models_dir.name
        scratch.mkdir()
        for child in models_dir.iterdir():
            if child.is_dir():
                (scratch / child.name).symlink_to(child.resolve(), target_is_directory=True)
        (scratch / name).write_text(text, encoding="utf-8")
        _, problems = validate(scratch, stacks)
    return [str(p) for p in problems]


def commit(root: Path, promotion: Promotion) -> str:
    """Commit the promoted file alone; returns the new commit's id."""
    return commit_file(root, promotion.path, promotion.message)


def commit_file(root: Path, path: Path, message: str) -> str:
    """Commit one registry file alone with `message`; returns the new commit's id."""
    rel = str(path.relative_to(root))
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    for args in (["add", "--", rel], ["commit", "--quiet", "-m", message, "--", rel]):
        result = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PromotionError(f"git {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    return head.stdout.strip()


# --------------------------------------------------------------------------- CLI


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "promote",
        help="serve a model version in an environment (edits the registry file, prints the diff)",
        description="Serve VERSION of MODEL in ENV: 100%% by default, or a canary of --weight percent beside "
        "the version serving most traffic now. Comments and layout of the file are kept.",
    )
    p.add_argument("model", help="registry name (models/MODEL.yaml)")
    p.add_argument("--version", required=True, dest="model_version", help="the version to serve")
    p.add_argument("--to", required=True, dest="environment", help="the environment (dev, staging, prod, local)")
    p.add_argument("--weight", type=int, default=100, help="percent of traffic; under 100 makes a canary")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--commit", action="store_true", help="commit the change with a conventional message")
    mode.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    p.set_defaults(func=cmd_promote)


def cmd_promote(args: argparse.Namespace) -> int:
    from llmops.errors import UserError

    root = paths.repo_root()
    try:
        promotion = promote(root, args.model, args.environment, args.model_version, args.weight)
    except PromotionError as exc:
        lines = str(exc).splitlines()
        if len(lines) > 1:
            print("\n".join(lines[1:]), file=sys.stderr)
        raise UserError(lines[0]) from None
    for note in promotion.notes:
        print(f"note: {note}", file=sys.stderr)
    display = str(promotion.path.relative_to(root))
    if not promotion.changed:
        print(f"{display}: {args.environment} already serves that; nothing to do")
        return 0
    sys.stdout.write(promotion.diff(display))
    if args.dry_run:
        return 0
    promotion.path.write_text(promotion.after, encoding="utf-8")
    if args.commit:
        try:
            sha = commit(root, promotion)
        except PromotionError as exc:
            raise UserError(str(exc)) from None
        print(f"committed {sha[:12]}: {promotion.message}")
    return 0
