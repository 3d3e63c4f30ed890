"""Monthly cost of a stack. (Interface fixed here; implementation in progress.)"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmops.registry import Registry
from llmops.settings import StackSettings

CostKind = Literal["endpoint", "training", "node-pool", "system-nodes"]


@dataclass(frozen=True)
class CostLine:
    kind: CostKind
    name: str
    instance_type: str
    count: float
    hourly_usd: float
    monthly_usd: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StackCost:
    stack: str
    environment: str
    budget_monthly_usd: float
    lines: list[CostLine] = field(default_factory=list)

    @property
    def total_monthly_usd(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    def top(self, n: int) -> list[CostLine]:
        return sorted(self.lines, key=lambda line: line.monthly_usd, reverse=True)[:n]


def stack_cost(stack: str, settings: StackSettings, registry: Registry, models_dir: Path) -> StackCost:
    raise NotImplementedError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pass
