"""The `llmops` CrossGuard policy pack: validators, their pack, and per-environment enforcement.

Import the validators from here (tests, `policies.evaluate`); never import
`policies.__main__`, which builds the pack and serves the engine forever.
"""

from policies.enforcement import config_for_stack

__all__ = ["config_for_stack"]
