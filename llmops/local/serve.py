"""`python -m llmops.local.serve`: the serving front end's entry point (see llmops/local/serving/front.py).

The names the endpoint provider, the benchmark and the tests use are re-exported
from here, so callers keep one import path while the modules stay one per concern.
"""

from __future__ import annotations

from llmops.local.serving.front import (
    CHAT_ROUTE,
    COMPLETIONS_ROUTE,
    MODEL_HEADER,
    MODELS_ROUTE,
    REPLICA_HEADER,
    VERSION_HEADER,
    Exchange,
    create_app,
    main,
)
from llmops.local.serving.metrics import Metrics
from llmops.local.serving.replica import replica_argv, runtime_dtype
from llmops.local.serving.routing import Autoscale, Launch, Router, RoutingTable, Upstream, VariantRoute

__all__ = [
    "CHAT_ROUTE",
    "COMPLETIONS_ROUTE",
    "MODELS_ROUTE",
    "MODEL_HEADER",
    "REPLICA_HEADER",
    "VERSION_HEADER",
    "Autoscale",
    "Exchange",
    "Launch",
    "Metrics",
    "Router",
    "RoutingTable",
    "Upstream",
    "VariantRoute",
    "create_app",
    "main",
    "replica_argv",
    "runtime_dtype",
]

if __name__ == "__main__":
    raise SystemExit(main())
