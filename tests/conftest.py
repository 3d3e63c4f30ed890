"""Suite-wide settings: tests never reach a model hub, whatever the caller's environment."""

import os

# Sizing reads the shipped configs and never the hub; nothing else in a test may reach one either.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
