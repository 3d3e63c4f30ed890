"""Model evaluation: suites in git run by lm-eval, results cached by what produced them, gates.

- `suites`: the suites under models/evals/ and their content hash.
- `harness`: runs one suite with lm-eval on a model and returns a traceable record.
- `cache`: records keyed by (artifact sha256, suite sha256, lm-eval version).
- `gates`: judges records against the registry's gates, champion/challenger included.
- `run`: the command line the local provider runs in a child process.
- `cards`: model cards from the registry and the latest records.
- `cli`: `llmops eval run` and `llmops model-card`.
"""
