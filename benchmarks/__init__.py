"""Benchmark harness of skdiffclust; run ``python -m benchmarks.run --help``."""
