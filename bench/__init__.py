"""Benchmarks: ``python -m bench [NAME ...] [--quick]`` (see bench/__main__.py)."""
