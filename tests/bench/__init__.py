"""Benchmarks: `python -m tests.bench.<name>` (need the local Postgres)."""
