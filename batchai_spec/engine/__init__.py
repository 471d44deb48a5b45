"""Executing plans: the DAG walk, retries, waits, locks."""
