"""What every component of one stack shares: settings, paths, tags and names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from llmops.layout import Part, model_stack_name
from llmops.naming import short_name
from llmops.settings import StackSettings

__all__ = ["MANAGED_BY", "REQUIRED_TAGS", "StackContext", "short_name"]

MANAGED_BY = "llmops"
REQUIRED_TAGS = ("team", "model", "environment", "managed-by")


@dataclass(frozen=True)
class StackContext:
    # The stack whose file holds the settings: a model stack's environment stack, so a model's
    # descriptions and names read the same in either layout (nothing changes when it moves).
    stack: str
    settings: StackSettings
    root: Path
    # Secret settings, as the program reads them (`pulumi.Config.get_secret`): they stay marked secret.
    alarm_email: pulumi.Input[str] | None = None
    # What this stack builds (llmops.layout): everything, the environment's shared part, or one model.
    part: Part = "all"

    @property
    def builds_platform(self) -> bool:
        return self.part != "model"

    @property
    def builds_models(self) -> bool:
        return self.part != "platform"

    @property
    def moved_aliases(self) -> list[pulumi.Alias]:
        """The aliases a model's top-level resources carry in a model stack. `pulumi state move`
        puts a resource whose parent stays behind under the stack's root (`llmops migrate-stacks`
        moves a model's resources, not the Platform they sit under): found there, nothing changes."""
        return [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)] if self.part == "model" else []

    @property
    def deployed_stack(self) -> str:
        """The Pulumi stack this program runs as (`<env>.<model>` for a model stack)."""
        if self.part != "model":
            return self.stack
        return model_stack_name(self.stack, self.settings.models[0])

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

    @property
    def physical_scope(self) -> str:
        """What fixed physical names are scoped by: the environment, or a review stack's own name
        (it shares its environment's account, so `llmops-staging-<model>` stays staging's)."""
        return self.stack if self.settings.review_stack is not None else self.environment

    def tags(self, *, model: str = "platform", team: str = "platform") -> dict[str, str]:
        """The tags every taggable resource carries (a policy checks them); on a review stack also
        its pull request, head, creation time and TTL."""
        review = self.settings.review_stack.tags() if self.settings.review_stack is not None else {}
        return {"team": team, "model": model, "environment": self.environment, "managed-by": MANAGED_BY, **review}
