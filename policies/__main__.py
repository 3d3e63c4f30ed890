"""The `llmops` policy pack: the engine starts this file and it serves until stopped.

Validators live in `policies/policy_set.py` and the modules it imports; this file
only builds the pack (the `PolicyPack` constructor blocks, serving the engine).
"""

import sys
from pathlib import Path

# The engine runs this file with `policies/` itself first on sys.path; the pack's
# modules import as the `policies` package from the repository root instead.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
sys.path.insert(0, str(_here.parent))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.policy_set import DEFAULT_ENFORCEMENT, PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    description="LLMOps platform guardrails: cost, GPU quotas, security baseline and production gates.",
    policies=build_policies(),
    enforcement_level=DEFAULT_ENFORCEMENT,
)
