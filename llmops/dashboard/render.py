"""HTML building blocks of the dashboard and the reports: plotly charts, panels, pages.

Charts are plotly figures whose JavaScript ships inside the `plotly` package: the
dashboard serves it from its own port and a report embeds it, so nothing loads from
the network. A panel with nothing to draw says "no data".
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from llmops.dashboard.data import Series

NO_DATA = "no data"
_AXIS: dict[str, dict[str, Any]] = {
    "percentunit": {"tickformat": ".1%"},
    "percent": {"ticksuffix": "%"},
    "s": {"title": {"text": "seconds"}},
    "reqps": {"title": {"text": "requests/s"}},
    "currencyUSD": {"tickprefix": "$"},
}
_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2328;background:#f6f8fa}
h1{font-size:1.4rem;margin:0 0 .3rem} .meta{color:#57606a;font-size:.85rem;margin-bottom:1rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1rem}
.panel{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.6rem .8rem}
.panel h2{font-size:1rem;margin:.1rem 0 .4rem}
.no-data{color:#57606a;font-style:italic;padding:2rem 0;text-align:center}
table{border-collapse:collapse;font-size:.85rem;width:100%} th,td{border-bottom:1px solid #d0d7de;
padding:.25rem .5rem;text-align:right} th:first-child,td:first-child{text-align:left}
pre{font-size:.78rem;overflow-x:auto;white-space:pre-wrap} .fail{color:#cf222e} .ok{color:#1a7f37}
a{color:#0969da}
"""


def esc(text: object) -> str:
    return html.escape(str(text))


def figure(fig: Any, div_id: str) -> str:
    """A plotly figure as a div (the page loads plotly.js once)."""
    fig.update_layout(
        height=260,
        margin={"l": 50, "r": 10, "t": 10, "b": 30},
        legend={"orientation": "h", "y": -0.25},
        showlegend=True,  # the version a line belongs to, even when it is the only one
    )
    config = {"displaylogo": False, "displayModeBar": False}
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=config))


def timeseries(series: Sequence[Series], unit: str, div_id: str, threshold: float | None = None) -> str | None:
    """Lines over time, one per series, with the registry's threshold as a dashed line; None if no series."""
    if not series:
        return None
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in series:
        times = [datetime.fromtimestamp(t, UTC) for t in s.times]
        fig.add_trace(go.Scatter(x=times, y=s.values, mode="lines+markers", name=s.name, marker={"size": 3}))
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", line_color="#cf222e", annotation_text=f"threshold {threshold:g}")
    fig.update_yaxes(**_AXIS.get(unit, {}))
    return figure(fig, div_id)


def panel(key: str, title: str, body: str | None, note: str = "") -> str:
    """One panel: its chart or table, or "no data" (with why, when known)."""
    inner = body if body else f'<p class="no-data">{NO_DATA}{f" ({esc(note)})" if note else ""}</p>'
    extra = f'<div class="meta">{esc(note)}</div>' if body and note else ""
    return f'<section class="panel" data-panel="{esc(key)}"><h2>{esc(title)}</h2>{inner}{extra}</section>'


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fmt(value: float | None, unit: str) -> str:
    """A number for a table cell; None is "no data", never 0."""
    if value is None:
        return f'<span class="no-data">{NO_DATA}</span>'
    if unit == "percentunit":
        return f"{value:.2%}"
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    return f"{value:.3g}"


def page(title: str, body: str, *, plotly_src: str | None, meta: str = "", refresh: int | None = None) -> str:
    """A whole HTML page; `plotly_src` None embeds plotly.js (a single-file, offline report)."""
    if plotly_src is None:
        from plotly.offline import get_plotlyjs

        script = f"<script>{get_plotlyjs()}</script>"
    else:
        script = f'<script src="{esc(plotly_src)}"></script>'
    reload = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{reload}<title>{esc(title)}</title>'
        f'<link rel="icon" href="data:,"><style>{_CSS}</style>{script}</head><body><h1>{esc(title)}</h1>'
        f'<div class="meta">{meta}</div>{body}</body></html>'
    )


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def json_block(data: Any) -> str:
    return pre(json.dumps(data, indent=2, default=str))
