"""Experiments: per-variant metrics, statistical verdicts, and git-native progressive delivery.

- `data`: what a metrics source returns per variant (counts, latency, feedback);
- `prometheus`, `cloudwatch`: the sources for the local and the aws target;
- `stats`: the tests, the sample-ratio check and the tri-state verdicts;
- `report`: one experiment's report, as text or JSON;
- `delivery`: `advance`, `rollback` and `history`, all as ordinary git commits;
- `cli`: the `llmops experiment`, `llmops history` and `llmops rollback` commands.
"""
