"""The local target: each capability as Pulumi dynamic providers running on this machine."""
