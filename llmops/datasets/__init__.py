"""Datasets: registry entries, validation, lineage, inference capture and drift monitoring."""
