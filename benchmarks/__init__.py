"""Benchmarks and parity checks; each module runs as ``python -m benchmarks.<name>``."""
