"""Record the URNs of the shipped AWS programs into tests/mocks/urns.json (the URN contract).

Run from the repository root at the commit whose URNs become the contract:
`python -m tests.mocks.urn_contract`. Only a commit that removes resources on purpose
needs a new record; a refactor must keep the old one passing (test_urn_contract.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess

from .harness import REPO, run_program

STACKS = ("dev", "staging", "prod")


def record() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for stack in STACKS:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            out[stack] = sorted(run_program(stack).urns())
        finally:
            loop.close()
            asyncio.set_event_loop(None)
    return out


if __name__ == "__main__":
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    data = {"commit": commit.stdout.strip(), "urns": record()}
    (REPO / "tests" / "mocks" / "urns.json").write_text(json.dumps(data, indent=1) + "\n")
