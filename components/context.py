"""What every component of one stack shares: settings, paths, tags and names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from llmops.naming import short_name
from llmops.settings import StackSettings

__all__ = ["MANAGED_BY", "REQUIRED_TAGS", "StackContext", "short_name"]

MANAGED_BY = "llmops"
REQUIRED_TAGS = ("team", "model", "environment", "managed-by")


@dataclass(frozen=True)
class StackContext:
    stack: str
    settings: StackSettings
    root: Path
    # Secret settings, as the program reads them (`pulumi.Config.get_secret`): they stay marked secret.
    alarm_email: pulumi.Input[str] | None = None

    @property
    def alarm_address(self) -> pulumi.Input[str] | None:
        """Where SLO alarms are mailed: the secret setting, else the plain one (settings read from a file)."""
        return self.alarm_email if self.alarm_email is not None else self.settings.alarm_email

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def environment(self) -> str:
        return self.settings.environment

    def tags(self, *, model: str = "platform", team: str = "platform") -> dict[str, str]:
        """The tags every taggable resource carries (a policy checks them)."""
        return {"team": team, "model": model, "environment": self.environment, "managed-by": MANAGED_BY}
