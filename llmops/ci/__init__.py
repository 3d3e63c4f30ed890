"""`llmops ci …`: the steps the GitHub workflows run, runnable the same way on a laptop.

- `ci plan`: the affected stacks; in GitHub Actions also step outputs and a job summary.
- `ci preview`: `pulumi preview` under the policy pack for each affected stack.
- `ci deploy`: validate the registry, plan, then per affected stack in promotion
  order a policy-checked preview (a violation stops everything before any
  change) and `pulumi up`; the first failure stops the rest.
- `ci pr-comment`: the pull request comment: plan, preview summaries, and the
  monthly cost of each affected stack before (base) and after (head).
- `ci drift`: `pulumi preview --refresh --expect-no-changes`; a report when
  what runs differs from the stack's state.

By concern: `runner` drives the engine through the Automation API (`pulumi.automation`:
a local workspace on this checkout's engine, the policy pack and its per-environment
configuration, typed engine events); `results` holds what a run produced; `selection`,
`deploy`, `comment`, `drift` and `github` are the steps; `commands` the CLI. The names
other code uses are re-exported here.
"""

from llmops.ci.commands import EXIT_DRIFT, add_parser
from llmops.ci.comment import COMMENT_MARKER, cost_table, load_previews, pr_comment, preview_section, save_previews
from llmops.ci.deploy import deploy
from llmops.ci.drift import drift_report
from llmops.ci.errors import CiError
from llmops.ci.results import OP_WORDS, RunResult, Violation, parse_preview_text
from llmops.ci.runner import DEFAULT_POLICY_CONFIG_DIR, DEFAULT_POLICY_PACK, Engine, engine_from_args
from llmops.ci.selection import check_checkout, select_stacks, stack_targets, validate_registry
from llmops.gitrepo import resolve

__all__ = [
    "COMMENT_MARKER",
    "DEFAULT_POLICY_CONFIG_DIR",
    "DEFAULT_POLICY_PACK",
    "EXIT_DRIFT",
    "OP_WORDS",
    "CiError",
    "Engine",
    "RunResult",
    "Violation",
    "add_parser",
    "check_checkout",
    "cost_table",
    "deploy",
    "drift_report",
    "engine_from_args",
    "load_previews",
    "parse_preview_text",
    "pr_comment",
    "preview_section",
    "resolve",
    "save_previews",
    "select_stacks",
    "stack_targets",
    "validate_registry",
]
