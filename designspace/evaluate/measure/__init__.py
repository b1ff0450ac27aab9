"""Latency measured on a runtime here: what a measurement is (``latency``: runtimes, context, protocol, result),
how a model is timed (``timing``: in-process rounds, the isolated protocol's figures, the reference store), a
network's figure from the cache or measured, one or many (``cached``), the isolated ONNX Runtime worker
(``isolated``, ``_ort_worker``) and the ONNX export it times (``onnx``)."""
