"""Lookalike benchmarks: ``python -m bench`` (or ``make bench``); see BENCHMARKS.md."""
