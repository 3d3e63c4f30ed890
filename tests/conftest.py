"""Suite-wide settings: tests never reach a model hub, whatever the caller's environment."""

import os

# Sizing may load a hub config when online; the tests run on the shipped configs only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
