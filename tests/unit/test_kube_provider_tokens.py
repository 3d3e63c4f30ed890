"""Every Kubernetes resource the components declare exists in the provider plugin `make kube-tools` builds.

The Python SDK (pulumi_kubernetes, pinned in requirements.lock) knows more resource types than
the provider build (its schema-embed.json, generated as the provider's generate.go does): an
object of a type the provider lacks would fail only at `up`. Reads each `k8s.<group>.<version>.<Kind>`
the components use, takes its type token from the SDK class, and looks it up in the schema.
Cannot prove: that the provider's behaviour for a type matches the SDK release's (the kube
engine tests apply the real objects). Skipped, saying so, where the toolchain is not built.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re

import pytest

from tests.support.project import REPO

pytestmark = [pytest.mark.unit, pytest.mark.kube]

SCHEMA = REPO / ".kube-tools" / "src" / "provider-v4" / "cmd" / "pulumi-resource-kubernetes" / "schema-embed.json"
USE = re.compile(r"\bk8s\.((?:[a-z_0-9]+\.)+)([A-Z]\w+)\(")


def used_tokens() -> dict[str, str]:
    """Type token -> the `k8s.…` expression that creates it, over every module of components/."""
    tokens: dict[str, str] = {}
    for path in sorted((REPO / "components").rglob("*.py")):
        for module, kind in USE.findall(path.read_text()):
            if (module, kind) == ("apiextensions.", "CustomResource"):
                continue  # typed by its CRD's apiVersion and kind, not by the schema
            cls = getattr(importlib.import_module(f"pulumi_kubernetes.{module.rstrip('.')}"), kind)
            found = re.search(r"""['"](kubernetes:[\w./-]+:\w+)['"]""", inspect.getsource(cls))
            assert found, f"no type token in {cls}"
            tokens[found.group(1)] = f"k8s.{module}{kind}"
    return tokens


@pytest.mark.skipif(not SCHEMA.is_file(), reason="the kube toolchain is not built: run `make kube-tools`")
def test_every_resource_type_the_components_use_is_in_the_provider_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    tokens = used_tokens()
    assert "kubernetes:apps/v1:Deployment" in tokens  # the scan sees the EKS builders
    missing = {expr: token for token, expr in tokens.items() if token not in schema["resources"]}
    assert not missing, f"not in the provider build ({schema['version']}): {missing}"
