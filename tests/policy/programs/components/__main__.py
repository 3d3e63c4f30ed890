"""Registers the llmops components' type tokens with the inputs in `resources.json`.

The same parent/child shape as the Platform (one Platform, its children), with
no children of their own, so the policy pack can be tried on any registry
intent without the local target's processes or a cloud account.
"""

import json
from pathlib import Path

import pulumi


class Facts(pulumi.ComponentResource):
    def __init__(self, type_token: str, name: str, props: dict, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token, name, props, opts)
        self.register_outputs({})


spec = json.loads((Path(__file__).parent / "resources.json").read_text())
platform = Facts("llmops:platform:Platform", "llmops", spec["platform"])
for child in spec["children"]:
    Facts(child["type"], child["name"], child["props"], pulumi.ResourceOptions(parent=platform))
