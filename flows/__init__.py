"""Prefect flows: short, idempotent sweeps over what is due now."""
