"""``designspace export``: a study's trial (or any Arch) as everything a training pipeline needs.

``export(source, out)`` writes into ``out``:

* ``arch.yaml``: the Arch (``designspace.build_model("arch.yaml")`` builds it);
* ``model.onnx``: the network in eval mode at batch 1 (input ``"input"``, output ``"logits"``), checked against
  PyTorch with ONNX Runtime;
* ``metrics.json``: parameters, MACs, latency with its context and the accuracy estimate as the search
  recorded them (``recorded``; its latency as a :class:`LatencyEstimate`, ``recorded.latency``), beside what the
  export re-counted and re-measured (``latency_now``: device ``local``, source ``measured``, with its interval),
  for a study on a device that device's latency predicted now with its interval and whether it meets the study's
  latency budget (``latency_device``, with ``budget``), and the predicted ImageNet-1K top-1 with
  its 95% interval (``top1_predicted``: ``top1_mean``, ``top1_std``, ``top1_lo``, ``top1_hi`` in %,
  ``extrapolated``, ``reason``);
* ``recipe.yaml``: the training recipe of the paper family the Arch most resembles (:mod:`designspace.recipes`);
* ``README.md``: how to build, train and deploy it;
* for a trial of a ``--objective trained`` search: ``best.pt`` (its trained weights), ``trained_arch.yaml`` (the
  Arch they fit: the dataset's classes, the training resolution) and ``trained_metrics.csv`` (its learning curve),
  copied from ``results/<study>/train/<fingerprint>/`` (:mod:`designspace.search.trained_results`).

The model is rebuilt and re-counted first: parameters and MACs must equal the recorded ones exactly (an
:class:`ExportError` otherwise, with nothing written). Latency is re-measured in the recorded context; a
difference beyond the measurement noise is a warning, not an error (a shared machine drifts).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.latency_estimate import MIN_NOISE as _MIN_NOISE
from designspace.evaluate.latency_estimate import LatencyEstimate, budget_verdict
from designspace.exceptions import DesignspaceError

__all__ = ["ExportError", "ExportReport", "export", "resolve_source"]

log = logging.getLogger("designspace")

#: The smallest relative latency difference called real (:data:`designspace.evaluate.latency_estimate.MIN_NOISE`).
MIN_NOISE = _MIN_NOISE
FILES = ("arch.yaml", "model.onnx", "metrics.json", "recipe.yaml", "README.md")


class ExportError(DesignspaceError):
    """The source cannot be exported (no such trial, counts that disagree with the study, files in the way)."""


@dataclass
class ExportReport:
    """What an export wrote and found.

    Attributes:
        out: the output folder.
        arch: the exported Arch.
        metrics: the content of ``metrics.json``.
        warnings: what the user should know (latency drift, an infeasible trial).
        files: the files written.
    """

    out: Path
    arch: Arch
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing paths that leave ``folder`` (a trials file is data, not a trusted path)."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ExportError(f"{folder}: the trials file points outside the study folder ({relative!r}) (fix: rerun "
                          "the search to rewrite its results)")
    return path


def resolve_source(source: str | Path) -> tuple[Arch, dict[str, str] | None, dict[str, Any] | None]:
    """The Arch behind ``source`` and, for a study trial, its trials-table row and the study's settings.

    ``source`` is an Arch YAML file, a zoo name, ``STUDY`` (its best feasible trial: the first of the
    summary's best) or ``STUDY:TRIAL`` (a trial number).

    Raises:
        ExportError: an unknown study or trial, a trial with no Arch.
        DocumentError: an unreadable Arch file.
    """
    from designspace.network import load_arch
    from designspace.results import read_results

    text = str(source)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return load_arch(path), None, None
    study, _, trial = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        res = read_results(study)
    except DesignspaceError as err:
        from designspace import zoo

        if not trial and text in zoo.names():
            return zoo.load(text), None, None
        raise ExportError(f"{text}: not an Arch file, a zoo name or a study ({err})") from None
    if trial:
        try:
            number = int(trial)
        except ValueError:
            raise ExportError(f"{text}: the trial must be a number (fix: STUDY:12)") from None
    else:
        best = res.summary.get("best") or []
        if not best:
            raise ExportError(f"{res.folder}: no feasible trial to export (fix: name one, STUDY:TRIAL; "
                              "designspace pareto STUDY lists the front)")
        number = int(best[0]["number"])
    row = next((r for r in res.rows if r.get("number") == str(number)), None)
    if row is None:
        raise ExportError(f"{res.folder}: no trial {number} (fix: the study has trials 0-{len(res.rows) - 1}; "
                          "designspace pareto STUDY lists the front)")
    if not row.get("arch"):
        raise ExportError(f"{res.folder}: trial {number} has no Arch ({row.get('state')}: "
                          f"{row.get('reason') or 'not evaluated'}) (fix: export a complete trial)")
    arch = load_arch(_inside(res.folder, row["arch"]))
    return arch, row, res.settings


def _float(row: dict[str, str], key: str) -> float | None:
    try:
        value = float(row.get(key, ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_counts(arch: Arch, model: Any, row: dict[str, str] | None) -> dict[str, Any]:
    """Exact params/MACs of the rebuilt model; raises if the study recorded others."""
    from designspace.evaluate.counts.analytic import count

    counts = count(arch)
    built = sum(p.numel() for p in model.parameters())
    if built != counts.params:
        raise ExportError(f"{arch.name}: the built model has {built:,} parameters but the analytic count says "
                          f"{counts.params:,} (a bug: please report it with the Arch)")
    out = {"params": counts.params, "params_m": counts.params / 1e6, "macs": counts.macs,
           "macs_g": counts.macs / 1e9}
    if row is not None:
        for key, scale, ours in (("params_m", 1e6, counts.params), ("macs_g", 1e9, counts.macs)):
            recorded = _float(row, key)
            if recorded is None or round(recorded * scale) != ours:
                raise ExportError(f"trial {row['number']}: the rebuilt model has {key} {ours / scale:.6f} but the "
                                  f"search recorded {row.get(key)!r} (fix: the blocks' code changed since the search "
                                  f"({row.get('ctx_implementation') or 'unknown version'}); rerun the search with "
                                  "this version)")
    return out


def _remeasure(arch: Arch, row: dict[str, str] | None, settings: dict[str, Any] | None
               ) -> tuple[dict[str, Any] | None, str | None]:
    """Re-measures latency in the trial's recorded context; returns the figures and a warning (or None)."""
    from designspace.evaluate.sources import Measured, MeasurementError

    if row is not None and row.get("ctx_runtime"):
        runtime, threads, batch = row["ctx_runtime"], int(row["ctx_threads"]), int(row["ctx_batch"])
    elif settings is not None:
        ctx = settings.get("context") or {}
        runtime, threads, batch = ctx.get("runtime", "onnxruntime"), int(ctx.get("threads", 1)), \
            int(ctx.get("batch", 1))
    else:
        runtime, threads, batch = "onnxruntime", 1, 1
    try:  # no cache: the point is a fresh measurement
        measured = Measured(runtime, threads, batch, cache=None).estimate(arch)
    except MeasurementError as err:
        return None, f"latency not re-measured: {err}"
    est, lat = measured.estimate, measured.detail
    now: dict[str, Any] = {"latency_ms": lat.ms, "device": est.device, "source": est.source, "lo_ms": est.lo_ms,
                           "hi_ms": est.hi_ms, "spread": lat.spread, "flags": list(lat.flags),
                           "context": dataclasses.asdict(lat.context)}
    recorded = _recorded_local_ms(row, settings)
    if recorded is None:
        return now, None
    noise = max(lat.spread, MIN_NOISE)
    diff = lat.ms / recorded - 1
    now["recorded_ms"], now["difference"], now["noise"] = recorded, diff, noise
    if row is not None and row.get("ctx_machine") and row["ctx_machine"] != lat.context.machine:
        return now, (f"latency recorded on {row['ctx_machine']}, re-measured on {lat.context.machine}: "
                     f"{recorded:.3f} ms there, {lat.ms:.3f} ms here (not comparable)")
    if abs(diff) > noise:
        return now, (f"latency re-measured {lat.ms:.3f} ms vs {recorded:.3f} ms recorded ({diff:+.1%}, beyond the "
                     f"measurement noise of {noise:.1%}): the machine was busier or quieter than during the search")
    return now, None


def _recorded_local_ms(row: dict[str, str] | None, settings: dict[str, Any] | None) -> float | None:
    """The trial's own local measurement (ms) to compare a re-measurement with: its latency where the study
    measured it, a table study's front re-measured whole, an older study's ``latency_measured_ms``; else None."""
    if row is None:
        return None
    est = LatencyEstimate.from_columns(row, (settings or {}).get("device") or None)
    if est is not None and est.source == "measured" and est.device == "local":
        return est.value_ms
    return _float(row, "latency_remeasured_ms") or _float(row, "latency_measured_ms")


def _device_latency(arch: Arch, settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """The study's device's latency of ``arch``, predicted now by its profile (milliseconds, from the Arch alone),
    with its interval and whether it meets the study's latency budget; None for a local study or a plain Arch."""
    from designspace.evaluate.sources import Device

    device = (settings or {}).get("device")
    if not device or device == "local":
        return None
    try:
        est = Device(str(device)).estimate(arch).estimate
    except DesignspaceError as err:  # a study's profile removed since: say so, export the rest
        return {"device": device, "source": "predicted", "error": str(err)}
    out = est.to_dict()
    limit = _latency_budget(settings)
    out["budget"] = budget_verdict(est, limit, "the study's") if limit is not None else None
    return out


def _latency_budget(settings: dict[str, Any] | None) -> float | None:
    """The study's latency budget in ms (on its device), or None."""
    for b in (settings or {}).get("budgets", []):
        if b.get("metric") == "latency_ms":
            return float(b["limit"])
    return None


def _recorded(row: dict[str, str] | None, settings: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    keep = ("number", "state", "feasible", "broken", "device", "zoo", "fingerprint", "repairs", "reason")
    out: dict[str, Any] = {k: row.get(k, "") for k in keep}
    for k in row:
        if k in ("params_m", "macs_g", "latency_ms", "latency_measured_ms") or k.startswith("c_"):
            out[k] = _float(row, k)
    if settings is not None:
        out["objectives"] = {o["name"]: _float(row, o["name"]) for o in settings.get("objectives", [])}
        out["budgets"] = settings.get("budgets", [])
        out["space"] = settings.get("space")
    est = LatencyEstimate.from_columns(row, (settings or {}).get("device") or None)
    out["latency"] = est.to_dict() if est is not None else None  # the trial's figure, its device and source
    # where the figure was obtained: the local measurement context, or (a prediction) the device and its fit
    out["context"] = {k[4:]: v for k, v in row.items() if k.startswith("ctx_") and v not in (None, "")} or (
        {"device": est.device, "source": est.source, **est.context} if est is not None else {})
    return out


def _top1_line(p: dict[str, Any]) -> str:
    """``78.9 +- 0.9 % (95% interval 77.1-80.7 %)``, with the extrapolation warning where there is one."""
    line = f"{p['top1_mean']:.1f} +- {p['top1_std']:.1f} % (95% interval {p['top1_lo']:.1f}-{p['top1_hi']:.1f} %; " \
           "fitted on published networks, not a measurement)"
    return line + (f"; extrapolated: {p['reason']}" if p["extrapolated"] else "")


def _latency_lines(metrics: dict[str, Any]) -> str:
    """README lines for the latencies: the study's device's prediction with its interval and budget verdict,
    then the local re-measurement, each naming its device and source."""
    lines = []
    dev = metrics.get("latency_device")
    if dev and dev.get("error"):
        lines.append(f"- latency on {dev['device']}, predicted: not available ({dev['error']})")
    elif dev:
        est = LatencyEstimate.from_dict(dev)
        ctx = est.context
        fit = (f"; the profile's cost model, fitted on {ctx['points']} published latencies, leave-one-out error "
               f"{ctx['loo_mean_error']:.1%} mean" if "points" in ctx else "")
        verdict = f": {dev['budget']['text']}" if dev.get("budget") else ""
        lines.append(f"- {est.label}: {est.value_ms:.3f} ms "
                     f"(interval {est.interval_text()} ms{fit}){verdict}"
                     + (f"; EXTRAPOLATED: {'; '.join(est.extrapolation)}" if est.extrapolated else ""))
    lat = metrics.get("latency_now") or {}
    if lat.get("latency_ms"):
        c = lat["context"]
        interval = (f"interval {lat['lo_ms']:.3f}-{lat['hi_ms']:.3f} ms, " if lat.get("lo_ms") is not None else "")
        verdict = f": {lat['budget']['text']}" if lat.get("budget") else ""
        lines.append(f"- latency on local, measured: {lat['latency_ms']:.3f} ms re-measured at export ({interval}"
                     f"{c.get('runtime')}, {c.get('threads')} thread(s), batch {c.get('batch')}, {c.get('machine')})"
                     + verdict + (" (this machine, not the device)" if dev else ""))
    return "".join(f"{line}\n" for line in lines)


def _readme(arch: Arch, metrics: dict[str, Any], recipe_name: str) -> str:
    name = arch.name or arch.fingerprint
    lat_line = _latency_lines(metrics)
    from designspace.timm_compat import timm_model_name

    timm_key = name if any(c.isalnum() for c in name) else arch.fingerprint
    onnx = metrics.get("onnx")
    onnx_line = (f"`model.onnx` (opset 17, batch 1, input `input` of shape 1x{arch.in_chans}x{arch.resolution}x"
                 f"{arch.resolution}, output `logits`) was checked against PyTorch with ONNX Runtime (max abs "
                 f"difference {onnx['max_abs_diff']:.2e})." if onnx else
                 "No ONNX file was written (exported with --no-onnx): `designspace export` without it writes one.")
    return f"""# {name}

Exported by designspace {metrics['designspace']} (fingerprint `{arch.fingerprint}`).

- {metrics['counts']['params']:,} parameters ({metrics['counts']['params_m']:.3f} M), \
{metrics['counts']['macs_g']:.4f} GMACs at {arch.resolution}x{arch.resolution} (one multiply-add = 1; attention's
  matrix products and norms counted)
{lat_line}- accuracy estimate `{metrics['estimate']['name']}`: {metrics['estimate']['value']:.4f}
- predicted ImageNet-1K top-1: {_top1_line(metrics['top1_predicted'])}

## Build it in your pipeline

```python
import designspace
model = designspace.build_model("arch.yaml")     # a torch.nn.Module in train mode, {arch.num_classes} classes
```

For another number of classes, edit `num_classes` in `arch.yaml`. With timm installed,
`designspace.timm_compat.register_timm(archs={{"{timm_key}": "arch.yaml"}})` makes
`timm.create_model("{timm_model_name(timm_key)}")` work.

## Train it

`recipe.yaml` is the ImageNet-1K recipe of the paper family this network most resembles (`{recipe_name}`);
`not_applied` lists what the paper also used that `designspace train` does not implement.

```bash
designspace train arch.yaml --data /path/to/imagefolder --recipe recipe.yaml --epochs 30 --out run/
```

The recipe's own schedule is the paper's ImageNet-1K one (`epochs` in `recipe.yaml`, usually 300, with its
warm-up and cosine decay); `--epochs` shortens it (the warm-up in proportion), and 30 is a first run's length
on a small dataset. The data folder holds one sub-folder per class (or `train/` and `val/` folders of them).
The run writes a checkpoint every epoch and resumes from it when rerun with the same `--out`.

## Deploy it

{onnx_line}
"""



def export(source: str | Path, out: str | Path, *, latency: bool = True, onnx: bool = True,
           force: bool = False, weights: str | Path | None = None, coreml: bool = False) -> ExportReport:
    """Exports a study trial, an Arch file or a zoo model to ``out`` (see the module docstring).

    Args:
        source: ``STUDY``, ``STUDY:TRIAL``, an Arch YAML file or a zoo name.
        out: output folder (created).
        latency: re-measure latency in the recorded context (seconds; otherwise skipped).
        onnx: write and check ``model.onnx``.
        force: replace files already in ``out``; without it, existing files make the export fail before
            anything is written.
        weights: a checkpoint whose weights go into ``model.onnx`` (``designspace train``'s ``best.pt`` or
            ``checkpoint.pt``, or a plain ``state_dict`` file); without it the weights are
            ``build_model``'s initialization under ``torch.manual_seed(0)``, so the ONNX file can be
            reproduced in PyTorch.
        coreml: also write ``model.mlpackage`` (Core ML ML program, fp16, iOS 16; converted on any OS,
            run only on macOS/iOS: :mod:`designspace.evaluate.coreml`) and its op inventory in ``metrics.json``.

    Raises:
        ExportError: an unknown source, counts that disagree with the study, files in the way, a failed ONNX check.
    """
    import torch

    from designspace import __version__
    from designspace.evaluate.accuracy.estimate import DEFAULT, canonical, estimate
    from designspace.evaluate.accuracy.top1 import predict_top1
    from designspace.network import Network
    from designspace.recipes import family_of, recipe_for
    from designspace.search.trained_results import trained_run_of

    arch, row, settings = resolve_source(source)
    trained = trained_run_of(source, row)  # --objective trained: the trial's best.pt, copied beside model.onnx
    folder = Path(out)
    if not force:
        taken = [f for f in (*FILES, *(("model.mlpackage",) if coreml else ()), *(trained.files if trained else ()))
                 if (folder / f).exists()]
        if taken:
            raise ExportError(f"{folder}: {', '.join(taken)} already there (fix: another --out, or --force to "
                              "replace them)")
    torch.manual_seed(0)  # the exported weights are reproducible: build_model after torch.manual_seed(0)
    model = Network(arch).eval()
    counts = _check_counts(arch, model, row)
    if weights is not None:
        _load_weights(model, Path(weights))
    report = ExportReport(folder, arch, {})
    if row is not None and row.get("feasible") == "False":
        report.warnings.append(f"trial {row['number']} is infeasible: {row.get('broken') or row.get('reason')}")

    estimate_name = DEFAULT
    if settings is not None:
        acc = [o for o in settings.get("objectives", []) if o.get("kind") == "estimate"]
        estimate_name = acc[0]["arg"] if acc else DEFAULT
    metrics: dict[str, Any] = {
        "weights": str(weights) if weights is not None else "initialization (build_model after torch.manual_seed(0))",
        "designspace": __version__, "name": arch.name, "fingerprint": arch.fingerprint,
        "source": str(source), "resolution": arch.resolution, "counts": counts,
        "estimate": {"name": canonical(estimate_name), "value": estimate(arch, estimate_name)},
        # predicted ImageNet-1K top-1 (%) with its 95% interval (evaluate/accuracy/top1.py), whatever the estimate
        "top1_predicted": predict_top1(arch).to_dict(),
        "recorded": _recorded(row, settings), "family": family_of(arch),
        "trained": trained.metrics if trained is not None else None,
    }
    onnx_bytes = None
    if onnx:
        from designspace.evaluate.measure.onnx import export_onnx, run_onnx

        example = torch.randn(1, arch.in_chans, arch.resolution, arch.resolution,
                              generator=torch.Generator().manual_seed(0))
        onnx_bytes = export_onnx(model, example)
        with torch.no_grad():
            want = model(example)
        got = run_onnx(onnx_bytes, example)
        diff = float((got - want).abs().max())
        tol = 1e-4 * max(1.0, float(want.abs().max()))
        metrics["onnx"] = {"max_abs_diff": diff, "tolerance": tol, "opset": 17}
        if not diff <= tol:
            raise ExportError(f"{arch.name}: ONNX Runtime's output differs from PyTorch's by {diff:.3g} (> {tol:.3g}); "
                              "nothing written (a bug: please report it with the Arch)")
    mlmodel = None
    if coreml:
        from designspace.evaluate.coreml import convert, op_inventory

        mlmodel = convert(model, input_shape=(1, arch.in_chans, arch.resolution, arch.resolution))
        metrics["coreml"] = {"file": "model.mlpackage", "precision": "fp16", "target": "iOS16",
                             "ops": dict(sorted(op_inventory(mlmodel).items())),
                             "note": "runs on macOS/iOS only (Xcode's performance report gives device latency)"}
    metrics["latency_device"] = _device_latency(arch, settings)
    if latency:
        now, warning = _remeasure(arch, row, settings)
        limit = _latency_budget(settings)
        if now is not None and limit is not None and metrics["latency_device"] is None:  # the budget is local
            now["budget"] = budget_verdict(LatencyEstimate(now["latency_ms"], "local", "measured", now["lo_ms"],
                                                           now["hi_ms"]), limit, "the study's")
        metrics["latency_now"] = now
        if warning:
            report.warnings.append(warning)
    for w in report.warnings:
        log.warning("warning: %s", w)
    metrics["warnings"] = report.warnings
    recipe = recipe_for(arch)

    folder.mkdir(parents=True, exist_ok=True)
    texts = {"arch.yaml": arch.to_yaml(), "metrics.json": json.dumps(metrics, indent=2, default=str) + "\n",
             "recipe.yaml": recipe.to_yaml()}
    texts["README.md"] = _readme(arch, metrics, recipe.name) + (trained.readme() if trained is not None else "")
    for name, text in texts.items():
        _write(folder / name, text.encode("utf-8"))
        report.files.append(folder / name)
    for name, path in (trained.files if trained is not None else {}).items():  # beside model.onnx
        _write(folder / name, path.read_bytes())
        report.files.append(folder / name)
    if onnx_bytes is not None:
        _write(folder / "model.onnx", onnx_bytes)
        report.files.append(folder / "model.onnx")
    if mlmodel is not None:
        from designspace.evaluate.coreml import save

        report.files.append(save(mlmodel, folder / "model.mlpackage"))
    report.metrics = metrics
    return report


def _load_weights(model: Any, path: Path) -> None:
    from designspace.train.checkpoint import CheckpointError, load_tensors, model_state

    fix = "a checkpoint.pt or best.pt from designspace train, or a torch.save'd state_dict"
    try:  # weights only: a pickle that names code is refused before anything in it runs
        state = model_state(load_tensors(path, fix=fix), path, fix=fix)
    except CheckpointError as err:
        raise ExportError(str(err)) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        lines = str(err).strip().splitlines()
        reason = lines[1].strip() if len(lines) > 1 else lines[0]
        raise ExportError(f"{path}: the weights do not fit this Arch ({reason})"
                          " (fix: export the arch.yaml the weights were trained with, e.g. the run folder's)") from None


def _write(path: Path, data: bytes) -> None:
    # written beside, then renamed: an interrupted export leaves whole files or none
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
