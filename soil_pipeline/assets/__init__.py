"""Dagster assets, one module per domain: thin wrappers that read inputs, call the science core, return tables."""
