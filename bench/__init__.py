"""Benchmarks of the certification service (run from the repository root)."""
