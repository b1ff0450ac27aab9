"""Evaluating an Arch: counts (analytic and traced), latency, device predictions, accuracy estimates."""

from designspace.evaluate.counts.analytic import ComponentCount, Counts, count
from designspace.evaluate.counts.traced import trace_count

__all__ = ["ComponentCount", "Counts", "count", "trace_count"]
