"""`ResourceGroup`: a child component that groups resources once created straight under its parent.

A capability component (a `GpuCluster`, a `ModelEndpoint`) used to create every
resource itself; its resource groups (the network, the control plane, a model
version, ...) are now child components. Moving a resource under a new parent
changes its URN, and a changed URN makes the engine replace the real resource.
So every resource a group creates carries an alias to the URN it had directly
under the group's parent; children of those resources inherit the alias.
"""

from __future__ import annotations

from typing import Any

import pulumi


class ResourceGroup(pulumi.ComponentResource):
    """A named group of resources under a capability component, with URNs kept by aliases."""

    def __init__(self, token: str, name: str, opts: pulumi.ResourceOptions) -> None:
        if opts.parent is None:
            raise ValueError(f"{token} {name}: a resource group needs its capability component as parent")
        super().__init__(token, name, None, opts)
        self._former_parent = opts.parent

    def child_opts(self, **options: Any) -> pulumi.ResourceOptions:
        """Options for a resource of this group: parented here, aliased to where it was before the group."""
        return pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=self._former_parent)], **options)
