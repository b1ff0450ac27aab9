"""Evaluating an Arch: counts (analytic and traced); latency, devices and proxies come later."""

from designspace.evaluate.counts import ComponentCount, Counts, count, trace_count

__all__ = ["ComponentCount", "Counts", "count", "trace_count"]
