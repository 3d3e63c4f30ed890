"""The registry's JSON Schema: generated, fresh, referenced by every file, and agreeing with pydantic.

Proves: `models/schema.json` equals what the registry model generates now (so a
schema change without `make schema` fails), `llmops registry schema --check`
says the same, every registry file starts with the editor header that points at
it, and the shipped files validate against the schema editors will use while a
file pydantic rejects for a schema reason is rejected by the schema too.
Cannot prove: cross-file checks (names, stacks, catalog, sizing); those are
beyond JSON Schema and run in `llmops registry validate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from llmops.cli import main
from llmops.commands import schema_text
from llmops.registry import SCHEMA_HEADER
from tests.unit.conftest import REPO, entry

pytestmark = pytest.mark.unit

SCHEMA = REPO / "models" / "schema.json"
REGISTRY_FILES = sorted((REPO / "models").glob("*.yaml"))


def test_schema_file_is_fresh() -> None:
    assert SCHEMA.read_text() == schema_text(), "models/schema.json is stale: run `make schema`"


def test_schema_check_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(REPO))
    assert main(["registry", "schema", "--check"]) == 0
    stale = tmp_path / "models"
    stale.mkdir()
    (stale / "schema.json").write_text("{}\n")
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    monkeypatch.setenv("LLMOPS_ROOT", str(tmp_path))
    assert main(["registry", "schema", "--check"]) == 1


@pytest.mark.parametrize("path", REGISTRY_FILES, ids=lambda p: p.name)
def test_every_registry_file_references_the_schema(path: Path) -> None:
    assert path.read_text().splitlines()[0] == SCHEMA_HEADER


@pytest.mark.parametrize("path", REGISTRY_FILES, ids=lambda p: p.name)
def test_shipped_files_satisfy_the_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize(
    "changes",
    [{"serving.colour": "red"}, {"serving.dtype": "fp12"}, {"owner": None}, {"serving.max_context": "long"}],
)
def test_schema_rejects_what_pydantic_rejects(changes: dict[str, object]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(entry(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(entry(**changes), schema)
