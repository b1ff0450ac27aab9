"""``eval``, ``proxies``, ``devices``, ``calibrate``: measuring and predicting one network."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from designspace.cli._format import emit, json_arg, runtime_args, table


def _eval(args: argparse.Namespace) -> int:
    from designspace.evaluate.evaluation import evaluate
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    ev = evaluate(arch, device=args.device, runtime=args.runtime, threads=args.threads, batch=args.batch,
                  cache=not args.no_cache, latency=args.latency != "table")
    table = None
    if args.latency in ("table", "both"):
        from designspace.evaluate.table import table_latency_of

        table = table_latency_of(arch, runtime=args.runtime, threads=args.threads, batch=args.batch)
    if args.json:
        print(json.dumps({**ev.to_dict(), "resolution": arch.resolution,
                          "table": table.to_dict() if table is not None else None}, indent=2))
        return 0 if ev.status == "ok" else 1
    lines = [f"{arch.name or args.arch}  fingerprint {ev.fingerprint}  {arch.resolution}x{arch.resolution}",
             f"params {ev.params:,} ({ev.params / 1e6:.3f} M)  MACs {ev.macs:,} ({ev.macs / 1e9:.4f} G)"]
    if table is not None:
        fit = (f"fitted term {table.term_ms:+.3f} ms (leave-one-out error {table.fit.loo_mean:.1%} mean on "
               f"{len(table.fit.points)} networks)" if table.fit is not None
               else "no fitted term yet: designspace lut build SPACE fits it")
        lines.append(f"latency {table.ms:.3f} ms from the per-block table: {len(table.components)} entries "
                     f"{table.entries_ms:.3f} ms, {fit}" + (f"; {table.measured_now} entries measured now"
                                                           if table.measured_now else ""))
        if args.latency == "table":
            print("\n".join(lines))
            return 0
    if ev.status != "ok":
        print("\n".join(lines))
        print(f"failed: {ev.reason}", file=sys.stderr)
        return 1
    lat = ev.latency
    assert lat is not None
    flags = f"  [{', '.join(lat.flags)}]" if lat.flags else ""
    lines.append(f"latency {lat.ms:.3f} ms measured{flags}: {lat.context.describe()}")
    if lat.ratio is not None and lat.reference_ms is not None:
        lines.append(f"        {lat.ratio:.4f} x the reference network's {lat.reference_ms:.4f} ms (median ratio of "
                     f"{lat.processes} worker processes, {lat.spread:.1%} apart; fastest direct minimum "
                     f"{lat.direct_ms:.3f} ms), {lat.runs} runs, {lat.seconds:.1f} s")
    else:
        lines.append(f"        minimum of {lat.runs} runs in {lat.rounds} rounds (median {lat.median_ms:.3f} ms; the "
                     f"two fastest rounds {lat.spread:.1%} apart), {lat.seconds:.1f} s")
    if ev.prediction is not None:
        pr = ev.prediction
        lines.append(f"{pr.device} {pr.ms:.3f} ms PREDICTED: {pr.fit.form} fit on {pr.fit.points} published models, "
                     f"leave-one-out error {pr.fit.loo_mean:.1%} mean, {pr.fit.loo_max:.1%} max "
                     f"(calibrated on {pr.calibration_machine})")
    print("\n".join(lines))
    return 0


def _proxies(args: argparse.Namespace) -> int:
    from designspace.evaluate.proxy_report import proxy_report
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    data = proxy_report(arch, proxies=tuple(args.proxy) if args.proxy else None, seed=args.seed, batch=args.batch)
    text = (f"{arch.name or args.arch}  fingerprint {arch.fingerprint}  seed {args.seed}, {args.batch} images\n"
            + table(data["rows"], [("proxy", "proxy"), ("value", "value (higher = more accurate)"), ("seconds", "s")])
            + f"\n\nThe search's default accuracy estimate is {data['default_estimate']!r}: the best-ranking estimate "
              "on the published models (docs/proxies.md).")
    emit(args, data, text)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from designspace.evaluate.devices_report import device_rows

    rows = device_rows(measure=args.measure)
    cols = [("name", "device"), ("points", "points"), ("fit", "fit"), ("loo", "leave-one-out error (mean / max)"),
            ("calibration", "calibration"), ("description", "description")]
    text = table(rows, cols) + ("\n\nPredictions carry the fit's leave-one-out error. A calibration 'shipped' was "
                                "measured where the profile was made; `designspace devices --measure` or "
                                "`designspace calibrate --device NAME` measures this machine's.")
    emit(args, rows, text)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from designspace.evaluate.devices_report import calibrate_command

    report = calibrate_command(args.name, points=args.point or [], points_file=args.points,
                               description=args.description, source=args.source, form=args.fit,
                               runtime=args.runtime, threads=args.threads, out=args.out, force=args.force)
    cols = [("model", "model"), ("local_ms", "local ms"), ("target_ms", "published ms"), ("loo_pred_ms", "LOO pred"),
            ("loo_error", "LOO error")]
    text = table(report["points"], cols) + (
        f"\n\n{report['name']}: {report['fit']} fit, leave-one-out error {report['loo_mean']:.1%} mean, "
        f"{report['loo_max']:.1%} max, on {report['machine']}" + (f"\nwritten to {report['file']}" if report["file"]
                                                                   else ""))
    emit(args, report, text)
    return 0


def register(sub: Any) -> None:
    """Adds the commands of this group to the ``designspace`` subparsers."""
    p = sub.add_parser("eval", help="params, MACs and measured latency of an Arch (and its prediction on a device)")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    p.add_argument("--device", help="a device profile (designspace devices): predicts its latency with the error")
    runtime_args(p)
    p.add_argument("--latency", choices=["measure", "table", "both"], default="measure",
                   help="measure the network (default), sum its per-block table entries, or both side by side")
    p.add_argument("--no-cache", action="store_true", help="measure again even if results/cache.sqlite has it")
    json_arg(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("proxies", help="training-free accuracy proxies of an Arch (and the combined estimates)")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    p.add_argument("--proxy", action="append", choices=["params", "macs", "synflow", "naswot", "zico", "meco"],
                   help="only these proxies (repeat; default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and images (default 0)")
    p.add_argument("--batch", type=int, default=16, help="images (default 16)")
    json_arg(p)
    p.set_defaults(func=_proxies)

    p = sub.add_parser("devices", help="device profiles and the leave-one-out error of their fits")
    p.add_argument("--measure", action="store_true", help="calibrate every profile on this machine now (slow once)")
    json_arg(p)
    p.set_defaults(func=_devices)

    p = sub.add_parser("calibrate", help="calibrate a device profile on this machine, or make one from your own "
                                        "measurements of zoo models on your device")
    p.add_argument("name", help="an existing profile to calibrate here, or the name of a new one")
    p.add_argument("--point", action="append", metavar="MODEL=MS",
                   help="a zoo model and its latency on your device in ms (repeat; at least 3)")
    p.add_argument("--points", metavar="FILE", help="a CSV (model,latency_ms) or YAML mapping of such points")
    p.add_argument("--description", default="", help="what the device is (hardware, runtime, batch)")
    p.add_argument("--source", default="", help="where the points come from")
    p.add_argument("--fit", choices=["auto", "proportional", "power", "affine"], default="auto")
    p.add_argument("--runtime", choices=["onnxruntime", "torch"], default="onnxruntime",
                   help="local runtime the profile maps from")
    p.add_argument("--threads", type=int, default=1, help="local threads the profile maps from")
    p.add_argument("--out", help="where to write the profile (default results/devices/NAME.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing profile file")
    json_arg(p)
    p.set_defaults(func=_calibrate)
