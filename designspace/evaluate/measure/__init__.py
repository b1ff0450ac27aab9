"""Latency measured on a runtime here: what a measurement is, how a model is timed, a network's figure cached or
measured, the isolated ONNX Runtime worker and the ONNX export (docs/architecture.md, 'Modules')."""
