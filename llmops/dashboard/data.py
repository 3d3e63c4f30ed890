"""What the dashboard draws, read from Prometheus' HTTP API and the records the platform keeps.

Nothing here makes up a number: a query that returns no series, or only NaN (a ratio
over no traffic), is no data, and the page says so instead of drawing a zero line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmops.dashboard.panels import Panel, substitute

_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class SourceError(RuntimeError):
    """Prometheus could not answer (down, or it rejected the query)."""


@dataclass
class Series:
    name: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat applied to one series' labels."""
    text = _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip()
    return text or template


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            r = httpx.get(f"{self.url}{path}", params=params, timeout=self.timeout)
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError(f"Prometheus at {self.url} did not answer: {exc}") from None
        if body.get("status") != "success":
            raise SourceError(f"Prometheus rejected {params.get('query')!r}: {body.get('error')}")
        return list(body["data"]["result"])

    def range(self, expr: str, start: float, end: float, step: float) -> list[tuple[dict[str, str], Series]]:
        out = []
        for row in self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}):
            series = Series("")
            for ts, value in row.get("values", []):
                v = float(value)
                if math.isfinite(v):
                    series.times.append(float(ts))
                    series.values.append(v)
            if series.values:  # a series of NaN only (0/0) is no data
                out.append((dict(row.get("metric", {})), series))
        return out

    def instant(self, expr: str) -> list[tuple[dict[str, str], float]]:
        out = []
        for row in self._get("/api/v1/query", {"query": expr}):
            v = float(row["value"][1])
            if math.isfinite(v):
                out.append((dict(row.get("metric", {})), v))
        return out


def panel_series(
    prom: Prometheus, panel: Panel, model: str, *, start: float, end: float, step: float, rate_interval: str
) -> list[Series]:
    """Every series a Prometheus panel's queries return for one model, named by their legend."""
    found = []
    for query in panel.queries:
        for labels, series in prom.range(substitute(query.expr, model, rate_interval), start, end, step):
            series.name = legend(query.legend, labels)
            found.append(series)
    return found
