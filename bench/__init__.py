"""Benchmarks: each `python -m bench.NAME` prints its result as one JSON line last."""
