"""The local dashboard's server: `python -m llmops.dashboard.server --port P --prometheus URL --records FILE`.

Started detached by the stack's `LocalDashboard` resource (components/local/dashboard.py),
bound to 127.0.0.1. Pages are drawn on request from Prometheus and the records file;
plotly.js is served from the installed `plotly` package, so the page needs no network.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from llmops.dashboard import render, views
from llmops.dashboard.data import Prometheus

REFRESH_SECONDS = 30


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def app(site: views.Site) -> Starlette:
    def meta() -> str:
        records = site.records()
        return render.esc(
            f"stack {records.get('stack', '?')} · Prometheus {site.prometheus.url} · "
            f"last {views.RANGE_SECONDS // 60} min, rates over {views.RATE_INTERVAL}"
        )

    def overview(request: Request) -> Response:
        body = views.overview(site)
        return HTMLResponse(
            render.page("LLMOps models", body, plotly_src=views.PLOTLY_PATH, meta=meta(), refresh=REFRESH_SECONDS)
        )

    def model(request: Request) -> Response:
        name = request.path_params["name"]
        body = views.model_page(site, name)
        if body is None:
            return PlainTextResponse(f"no model {name!r} is served by this stack", status_code=404)
        return HTMLResponse(
            render.page(f"Model {name}", body, plotly_src=views.PLOTLY_PATH, meta=meta(), refresh=REFRESH_SECONDS)
        )

    def plotly_js(request: Request) -> Response:
        return Response(_plotly_js(), media_type="application/javascript")

    def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/", overview),
            Route("/models/{name}", model),
            Route(views.PLOTLY_PATH, plotly_js),
            Route("/healthz", health),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m llmops.dashboard.server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prometheus", required=True, help="the stack's Prometheus URL")
    parser.add_argument("--records", type=Path, required=True, help="JSON the dashboard resource writes")
    args = parser.parse_args(argv)
    site = views.Site(Prometheus(args.prometheus), args.records)
    uvicorn.run(app(site), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
