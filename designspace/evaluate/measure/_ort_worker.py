"""A worker process that times ONNX models with ONNX Runtime alone, interleaved with a reference model. Run by path,
never imported by designspace: it imports only onnxruntime, numpy and the standard library, so no PyTorch state
shares the process with the timed runs (docs/latency.md, 'Protocol and the evidence for it').

Request on stdin: ``{"reference": MODEL, "models": [MODEL, ...], "threads": 1, "warmup_s": 0.2, "rounds": 6,
"round_s": 0.15, "min_runs": 2, "run_timeout_s": 10}``, ``MODEL = {"path": FILE, "shape": [1, 3, 224, 224]}``.
Answer on stdout: ``{"reference": [[ms, ...] per round], "models": [[[ms, ...] per round] per model], "error": null}``;
each round times the reference, then every model, for ``round_s`` each (at least ``min_runs`` runs), so that a slow
stretch of the host affects the reference and the models of a round alike.
"""

from __future__ import annotations

import json
import sys
import time


def _session(ort, path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # no spinning: an idle thread that spins steals the core the timed thread needs on a small host
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def main() -> int:
    import numpy as np
    import onnxruntime as ort

    req = json.loads(sys.stdin.read())
    threads = int(req.get("threads", 1))
    limit_ms = float(req.get("run_timeout_s", 10.0)) * 1000.0
    rng = np.random.default_rng(0)
    runners = []
    for spec in [req["reference"], *req["models"]]:
        sess = _session(ort, spec["path"], threads)
        feed = {sess.get_inputs()[0].name: rng.standard_normal(spec["shape"]).astype(np.float32)}
        runners.append((sess.run, feed))

    rounds, round_s, min_runs = int(req.get("rounds", 6)), float(req.get("round_s", 0.15)), int(req.get("min_runs", 2))

    def window(i: int, seconds: float) -> list[float]:
        run, feed = runners[i]
        times: list[float] = []
        t0 = time.perf_counter()
        while len(times) < min_runs or time.perf_counter() - t0 < seconds:
            t = time.perf_counter_ns()
            run(None, feed)
            times.append((time.perf_counter_ns() - t) / 1e6)
            if times[-1] > limit_ms:
                raise TimeoutError(f"one run took {times[-1] / 1000:.1f} s (limit {limit_ms / 1000:g} s)")
        return times

    for i in range(len(runners)):
        window(i, float(req.get("warmup_s", 0.2)))
    ref: list[list[float]] = []
    models: list[list[list[float]]] = [[] for _ in req["models"]]
    for _ in range(rounds):
        ref.append(window(0, round_s))
        for k in range(len(models)):
            models[k].append(window(k + 1, round_s))
    print(json.dumps({"reference": ref, "models": models, "error": None}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as err:  # the parent turns this into a MeasurementError with the reason
        print(json.dumps({"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}))
        sys.exit(0)
