"""Registry validation: every problem a pull request can introduce, located and reported at once.

Proves: each error kind of the issue (malformed YAML, unknown/missing fields, wrong
types, weights not summing to 100, min > max, unknown instance types, a name that
differs from its file or repeats another's, a deployment to an environment without
a stack, an unpinned or ungated production deployment) is reported as
`models/FILE.yaml:LINE: field.path: message` at the offending key's line; all
problems of all files come out together; hostile input (binary, tabs, duplicate
keys, deep nesting, alias bombs, a directory, arbitrary generated YAML) yields
located problems, never an exception; the CLI exits 1 on problems and 0 with a
one-line count, with no traceback.
Cannot prove: that a pinned revision exists on the hub, or that the shipped
registry's evaluation results are true; it checks what the files state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops import commands
from llmops.cli import main
from llmops.registry import Problem, RegistryError, load_registry, parse_file, validate
from llmops.settings import StackSettings
from tests.unit.conftest import REPO, dump, entry

pytestmark = pytest.mark.unit

Write = Callable[[str, Any], Path]
LINE_FORMAT = re.compile(r"^models/[^:]+\.yaml:\d+: \S+: .+$")


def problems_of(models_dir: Path, stacks: dict[str, StackSettings]) -> list[Problem]:
    return validate(models_dir, stacks)[1]


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def line_of(path: Path, needle: str, after: int = 0) -> int:
    """1-based line of the first line holding `needle`, below line `after`."""
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if number > after and needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_the_base_entry_and_the_shipped_registry_are_valid(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("demo", entry())
    registry, problems = validate(models_dir, stacks)
    assert problems == []
    assert list(registry.models) == ["demo"]
    shipped = load_registry(REPO / "models", stacks)
    assert "tiny-chat" in shipped.models and len(shipped.models) >= 4


def test_malformed_yaml_is_located(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    path = write("demo", dump(entry()).replace("task: text-generation", "task: [text-generation"))
    problem = only(problems_of(models_dir, stacks))
    assert problem.file == "models/demo.yaml" and problem.path == ""
    assert "malformed YAML" in problem.message
    assert problem.line is not None and problem.line >= line_of(path, "task:")


def test_unknown_field_at_its_line(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    path = write("demo", entry(**{"serving.colour": "red"}))
    problem = only(problems_of(models_dir, stacks))
    assert (problem.path, problem.message) == ("serving.colour", "unknown field")
    assert problem.line == line_of(path, "colour:")


def test_missing_field_names_the_field_at_its_parent(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    path = write("demo", entry(**{"serving.max_context": None}))
    problem = only(problems_of(models_dir, stacks))
    assert (problem.path, problem.message) == ("serving.max_context", "required field is missing")
    assert problem.line == line_of(path, "serving:")


def test_wrong_type_shows_the_value(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    path = write("demo", entry(**{"serving.variants": [{"version": "v1", "weight": "lots"}]}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "serving.variants[0].weight"
    assert "integer" in problem.message and "'lots'" in problem.message
    assert problem.line == line_of(path, "weight:")


def test_union_failures_merge_into_one_line(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    training = {
        "base_model": "scratch",
        "dataset": {"uri": "s3://b/d", "version": "1"},
        "hyperparameters": {"steps": [1, 2]},
        "max_runtime": 600,
    }
    write("demo", entry(training=training))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "training.hyperparameters.steps"
    assert problem.message.startswith("Input should be a valid integer") and "boolean" in problem.message


def test_variant_weights_must_sum_to_100(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    variants = [{"version": "v1", "weight": 80}, {"version": "v2", "weight": 10}]
    path = write("demo", entry(**{"deployments.dev": {"variants": variants}}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "deployments.dev.variants"
    assert "sum to 90, must be 100" in problem.message
    assert problem.line == line_of(path, "variants:", after=line_of(path, "dev:"))


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"serving.min_replicas": 3, "serving.max_replicas": 2}, "serving"),
        ({"deployments.dev": {"min_replicas": 4, "max_replicas": 2}}, "deployments.dev"),
        # Resolved per environment: the override's max against the model's min.
        ({"serving.min_replicas": 2, "deployments.dev": {"max_replicas": 1}}, "deployments.dev.min_replicas"),
    ],
)
def test_min_replicas_above_max(
    changes: dict[str, Any], path: str, write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("demo", entry(**changes))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == path
    assert "min_replicas" in problem.message and "> max_replicas" in problem.message


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"serving.instance": "ml.g9.huge"}, "serving.instance"),
        ({"deployments.dev": {"instance": "p9.mega"}}, "deployments.dev.instance"),
    ],
)
def test_unknown_instance_types(
    changes: dict[str, Any], path: str, write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("demo", entry(**changes))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == path and "unknown instance type" in problem.message


def test_unknown_training_instance(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    training = {"base_model": "scratch", "dataset": {"uri": "s3://b/d", "version": "1"}, "max_runtime": 600}
    write("demo", entry(training={**training, "instance": "ml.nope"}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "training.instance" and "unknown instance type 'ml.nope'" in problem.message


def test_name_must_equal_the_file_stem(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    path = write("other", entry())
    problem = only(problems_of(models_dir, stacks))
    assert problem.file == "models/other.yaml" and problem.path == "name"
    assert "differs from the file name 'other'" in problem.message
    assert problem.line == line_of(path, "name:")


def test_a_repeated_name_is_reported_on_the_file_not_named_after_it(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    # "a-copy" sorts before "demo": ownership must not depend on file order.
    write("a-copy", entry())
    write("demo", entry())
    problems = problems_of(models_dir, stacks)
    assert {p.file for p in problems} == {"models/a-copy.yaml"}
    assert any("repeats models/demo.yaml" in p.message for p in problems)


def test_deployment_to_an_environment_without_a_stack(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    path = write("demo", entry(**{"deployments.qa": {}}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "deployments.qa" and "no stack deploys environment 'qa'" in problem.message
    assert problem.line == line_of(path, "qa:")


@pytest.mark.parametrize("revision", ["main", ""])
def test_unpinned_revision_for_production(
    revision: str, write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("demo", entry(**{"versions.v1.huggingface.revision": revision}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path.startswith("versions.v1.huggingface")
    assert "unpinned revision for production environment 'prod'" in problem.message


def test_unpinned_is_fine_outside_production(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    write("demo", entry(**{"versions.v1.huggingface.revision": "main", "deployments": {"dev": {}, "staging": {}}}))
    assert problems_of(models_dir, stacks) == []


def test_unpinned_canary_variant_in_production(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    variants = [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}]
    path = write(
        "demo",
        entry(**{"deployments.prod": {"variants": variants}, "versions.v2": {"s3": {"uri": "s3://bucket/weights/v2"}}}),
    )
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "versions.v2.s3.version_id" and "unpinned" in problem.message
    assert problem.line == line_of(path, "s3:")


# --------------------------------------------------------------------------- versions


def test_an_undeclared_version_is_located_where_it_is_named(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    variants = [{"version": "v1", "weight": 90}, {"version": "v9", "weight": 10}]
    path = write("demo", entry(**{"deployments.dev": {"variants": variants}}))
    problem = only(problems_of(models_dir, stacks))
    assert (problem.path, problem.line) == ("deployments.dev.variants[1].version", line_of(path, "version: v9"))
    assert "unknown version 'v9'" in problem.message and "v1, v2, v3" in problem.message


def test_an_undeclared_shadow_version_is_located(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    path = write("demo", entry(**{"serving.shadow": {"version": "v9", "percent": 5}}))
    problem = only(problems_of(models_dir, stacks))
    assert (problem.path, problem.line) == ("serving.shadow.version", line_of(path, "version: v9"))


@pytest.mark.parametrize(
    ("changes", "where", "says"),
    [
        # A variant names a version; weights given beside it are the old shape, refused with the way out.
        (
            {"serving.variants": [{"version": "v1", "weight": 100, "source": {"local": "w"}}]},
            "serving.variants[0]",
            "declare version 'v1' once under the model's `versions`",
        ),
        ({"source.local": "w"}, "source", "weights are declared per version"),
        ({"versions": {}}, "versions", "at least 1 item"),
        ({"versions.v1": {"local": "@training"}}, "versions.v1.local", "no training section"),
    ],
)
def test_weights_live_under_versions_only(
    changes: dict[str, object], where: str, says: str, write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("demo", entry(**changes))
    problems = problems_of(models_dir, stacks)
    assert any(p.path == where and says in p.message for p in problems), problems


def test_one_version_at_most_is_the_training_run(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    training = {"base_model": "scratch", "dataset": {"uri": "s3://d/x/", "version": "1"}, "max_runtime": 600}
    trained = {"local": "@training"}
    write("demo", entry(**{"training": training, "versions": {"v1": trained, "v2": trained}}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "versions.v2.local" and "v1 is already this model's training run" in problem.message


def test_production_needs_an_evaluation_gate(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    write("demo", entry(**{"compliance.evaluation": None}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "compliance.evaluation" and "needs at least one evaluation gate" in problem.message


@pytest.mark.parametrize(
    ("evaluation", "path", "expected"),
    [
        (
            [{"suite": "assistant-basics", "metric": "accuracy", "threshold": 0.8, "result": 0.7}],
            "compliance.evaluation[0]",
            "recorded in the stack outputs (`evaluations`)",
        ),
        ({"metric": "accuracy", "threshold": 0.8, "result": 0.7}, "compliance.evaluation", "is a list of gates"),
        ([{"suite": "nope", "metric": "accuracy", "threshold": 0.8}], "compliance.evaluation[0].suite", "no suite"),
    ],
)
def test_gates_hold_no_typed_results_and_name_shipped_suites(
    evaluation: Any, path: str, expected: str, write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    file = write("demo", entry(**{"compliance.evaluation": evaluation}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == path and expected in problem.message
    line = file.read_text().splitlines()[problem.line - 1]
    assert ("suite" in line) if path.endswith("suite") else ("evaluation" in line or "- " in line), line


def test_aws_training_checkpoints_go_to_s3(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    training = {
        "base_model": "scratch",
        "dataset": {"uri": "s3://b/d", "version": "1"},
        "max_runtime": 600,
        "checkpoint": "/tmp/ckpt",
    }
    write("demo", entry(training=training))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "training.checkpoint" and "s3://" in problem.message


def test_missing_config_file(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    write("demo", entry(**{"source.config": "configs/nope.json"}))
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "source.config" and "no such file" in problem.message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not UTF-8"),
        ("# yaml-language-server: $schema=schema.json\n- a\n- b\n", "not a list"),
        ("# yaml-language-server: $schema=schema.json\njust a string\n", "not a str"),
        ("# yaml-language-server: $schema=schema.json\n", "empty"),
        ("# yaml-language-server: $schema=schema.json\nname: demo\n\towner: x\n", "tab"),
        ("# yaml-language-server: $schema=schema.json\n" + "[" * 5000 + "]" * 5000, "nesting depth"),
        (
            "# yaml-language-server: $schema=schema.json\n" + "a:\n" + "".join(f"{' ' * i}b:\n" for i in range(1, 60)),
            "",
        ),
        ("# yaml-language-server: $schema=schema.json\na: &x [*x]\n", "nested deeper"),
        ("# yaml-language-server: $schema=schema.json\nx: !custom 1\n", "could not determine a constructor"),
        ("# yaml-language-server: $schema=schema.json\nx: !!timestamp 2025-13-45\n", "cannot read this value"),
        ("# yaml-language-server: $schema=schema.json\n---\na: 1\n---\nb: 2\n", "malformed YAML"),
        ("# yaml-language-server: $schema=schema.json\nnul: \x00\n", "unacceptable character"),
    ],
)
def test_hostile_files_become_located_problems(
    content: str | bytes, expected: str, write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("demo", content)
    problems = problems_of(models_dir, stacks)
    assert problems and all(p.file == "models/demo.yaml" and p.line and p.line >= 1 for p in problems)
    assert any(expected in p.message for p in problems), "\n".join(map(str, problems))


def test_alias_bomb_is_refused_quickly(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    lines = ["# yaml-language-server: $schema=schema.json", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write("demo", "\n".join(lines) + "\n")
    problem = only(problems_of(models_dir, stacks))
    assert "expands to more than" in problem.message


def test_duplicate_keys_are_reported_with_both_lines(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    text = dump(entry()).replace("task: text-generation\n", "task: text-generation\ntask: embeddings\n")
    path = write("demo", text)
    problem = only(problems_of(models_dir, stacks))
    assert problem.path == "task" and problem.line == line_of(path, "task: embeddings")
    assert f"first on line {line_of(path, 'task: text-generation')}" in problem.message


def test_a_file_that_cannot_be_read(models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    (models_dir / "demo.yaml").mkdir()
    assert "cannot read the file" in only(problems_of(models_dir, stacks)).message


def test_yaml_merge_keys_fill_in_without_duplicates(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    text = dump(entry()).replace(
        "deployments:\n  dev: {}\n",
        "deployments:\n  dev: &d {min_replicas: 1}\n  staging:\n    <<: *d\n    max_replicas: 2\n",
    )
    write("demo", text)
    registry, problems = validate(models_dir, stacks)
    assert problems == []
    assert registry.models["demo"].deployment("staging").max_replicas == 2


def test_schema_header_is_required(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    write("demo", dump(entry()).split("\n", 1)[1])
    problem = only(problems_of(models_dir, stacks))
    assert problem.line == 1 and "yaml-language-server" in problem.message


def test_every_problem_of_every_file_at_once(write: Write, models_dir: Path, stacks: dict[str, StackSettings]) -> None:
    write("demo", entry(**{"serving.colour": "red", "serving.dtype": "fp12", "owner": None}))
    write("other", entry(**{"name": "other", "deployments.qa": {}, "serving.instance": "nope"}))
    write("junk", b"\xff\xfe")
    problems = problems_of(models_dir, stacks)
    by_file: dict[str, set[str]] = {}
    for p in problems:
        by_file.setdefault(p.file, set()).add(p.path)
    assert by_file == {
        "models/demo.yaml": {"serving.colour", "serving.dtype", "owner"},
        "models/other.yaml": {"deployments.qa", "serving.instance"},
        "models/junk.yaml": {""},
    }
    assert problems == sorted(problems, key=lambda p: (p.file, p.line or 0, p.path, p.message))
    with pytest.raises(RegistryError) as raised:
        load_registry(models_dir, stacks)
    assert len(raised.value.problems) == len(problems)


def test_explicit_paths_are_checked_against_the_rest(
    write: Write, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    write("bad", entry(**{"name": "bad", "serving.colour": "red"}))
    target = write("demo", entry())
    registry, problems = validate(models_dir, stacks, [target])
    assert problems == [] and "demo" in registry.models


def test_parse_file_keeps_usable_entries_with_header_problems(models_dir: Path, write: Write) -> None:
    path = write("demo", dump(entry()).split("\n", 1)[1])
    parsed, located, problems = parse_file(path, "models/demo.yaml")
    assert parsed is not None and located is not None and len(problems) == 1


# --------------------------------------------------------------------------- CLI


def run_cli(monkeypatch: pytest.MonkeyPatch, root: Path, *args: str) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(root))
    assert main(["registry", "validate", *args]) in (0, 1)


def make_root(tmp_path: Path, models_dir: Path) -> Path:
    (tmp_path / "stacks").symlink_to(REPO / "stacks")
    (tmp_path / "Pulumi.yaml").write_text("name: test\n")
    assert models_dir.parent == tmp_path
    return tmp_path


def test_cli_reports_each_problem_on_one_line_and_exits_1(
    tmp_path: Path, write: Write, models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path, models_dir)
    write("demo", entry(**{"serving.colour": "red"}))
    write("junk", "\x00")
    monkeypatch.setenv("LLMOPS_ROOT", str(root))
    assert main(["registry", "validate"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) >= 2 and all(LINE_FORMAT.match(line) for line in lines), out
    assert "Traceback" not in out + err and "problem(s)" in err


def test_cli_valid_registry_prints_one_line_count(
    tmp_path: Path, write: Write, models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path, models_dir)
    write("demo", entry())
    monkeypatch.setenv("LLMOPS_ROOT", str(root))
    assert main(["registry", "validate"]) == 0
    assert capsys.readouterr().out == "registry OK: 1 model file(s) valid\n"


def test_cli_reports_sizing_failures_at_the_instance(
    tmp_path: Path, write: Write, models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path, models_dir)
    path = write("demo", entry(**{"source.config": "configs/llama-3.1-70b.json", "serving.instance": "ml.g5.xlarge"}))
    monkeypatch.setenv("LLMOPS_ROOT", str(root))
    assert main(["registry", "validate"]) == 1
    out = capsys.readouterr().out
    assert f"models/demo.yaml:{line_of(path, 'instance:')}: serving.instance: stack dev: demo needs" in out
    assert main(["registry", "validate", "--no-sizing"]) == 0


def test_check_registry_sizes_each_stack(models_dir: Path, write: Write, stacks: dict[str, StackSettings]) -> None:
    # 70B at a long context fits no single dev-allowed instance.
    write("demo", entry(**{"source.config": "configs/llama-3.1-70b.json", "serving.max_context": 32768}))
    _, problems = commands.check_registry(models_dir, stacks)
    assert {p.path for p in problems} == {"serving.max_context"}
    assert any("stack dev:" in p.message and "largest" in p.message for p in problems)


# --------------------------------------------------------------------------- arbitrary input

# YAML that composes but that constructors trip on, and syntax fragments that break parsing.
_tagged = st.sampled_from(
    [
        *["!x 1", "!!int abc", "!!binary ???", "!!float x", "!!timestamp 2020-99-99", "!!python/object:os.system x"],
        *["!!set {a: 1}", "!!omap [1]", "!!map []", "!!str", "&a x", "*a", "1e400", ".nan", "~", "yes", "0x1F"],
    ]
)
_syntax = st.sampled_from(
    ["[", "{", "}", "- -", "'open", '"\\q"', "? x", "<<: *a", "<<: 1", "|", "%YAML 1.1", "---", "...", "\t", "@"]
)
_plain = st.one_of(
    st.sampled_from(["name", "serving", "variants", "weight", "100", "v1", "dev", "prod", "auto"]),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
)
_keys = st.one_of(
    st.sampled_from([*entry(), "runtime", "deployments", "dev", "prod", "<<", "? x"]),
    st.text(min_size=1, max_size=12),
)


def _render(value: Any, indent: int = 0) -> str:
    """YAML text, deliberately not always valid: keys and scalars go in unquoted."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "".join(f"\n{pad}{k}: {_render(v, indent + 2)}" for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return "[]"
        return "".join(f"\n{pad}- {_render(v, indent + 2)}" for v in value)
    return str(value)


def _documents(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    nested = st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)),
        max_leaves=30,
    )
    return nested.map(lambda v: _render(v).lstrip("\n"))


# Near-valid entries: a real entry with a few lines rewritten, dropped, repeated or shifted.
_BASE_LINES = dump(
    entry(training={"base_model": "scratch", "dataset": {"uri": "s3://b/d", "version": "1"}, "max_runtime": 600})
).splitlines()
_edits = st.lists(
    st.tuples(
        st.integers(0, len(_BASE_LINES) - 1),
        st.sampled_from(["value", "drop", "repeat", "indent", "dedent", "insert"]),
        st.one_of(_tagged, _syntax, _plain.map(str)),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(edits: list[tuple[int, str, str]]) -> str:
    lines = list(_BASE_LINES)
    for index, op, fragment in edits:
        i = index % len(lines)
        if op == "value":
            lines[i] = lines[i].split(":", 1)[0] + ": " + fragment
        elif op == "drop":
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][2:]
        else:
            lines.insert(i, fragment)
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


_any_yaml = st.one_of(
    _edits.map(_mutate),
    _documents(st.one_of(_tagged, _plain)),
    _documents(st.one_of(_syntax, _tagged, _plain)),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_any_yaml)
def test_arbitrary_yaml_never_crashes_the_validator(
    body: str, models_dir: Path, stacks: dict[str, StackSettings]
) -> None:
    path = models_dir / "fuzz.yaml"
    path.write_bytes(body.encode("utf-8", "surrogatepass"))
    registry, problems = validate(models_dir, stacks)
    assert problems or registry.models, "a file is either an entry or has problems"
    for problem in problems:
        assert problem.file == "models/fuzz.yaml" and isinstance(problem.line, int) and problem.line >= 1
        assert problem.message and "\n" not in str(problem)


def test_check_registry_reports_an_unloadable_config_at_source_config(
    models_dir: Path, write: Write, stacks: dict[str, StackSettings]
) -> None:
    (models_dir / "configs" / "broken.json").write_text('{"model_type": "no-such-architecture"}')
    path = write("demo", entry(**{"source.config": "configs/broken.json"}))
    _, problems = commands.check_registry(models_dir, stacks)
    assert {(p.path, p.line) for p in problems} == {("source.config", line_of(path, "config:"))}
    assert all("cannot load the transformers config" in p.message for p in problems)
