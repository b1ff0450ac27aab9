"""``eval``, ``proxies``, ``devices``, ``calibrate``: measuring and predicting one network."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from designspace.cli._format import MS, PERCENT, Column, emit, json_arg, latency_arg, runtime_args, table


def _eval(args: argparse.Namespace) -> int:
    """``eval``: the counts, then each latency from its source: the device's prediction (milliseconds, printed
    first), the table's figure, the network measured here (seconds, last)."""
    import dataclasses

    from designspace.evaluate.cache import Cache
    from designspace.evaluate.counts.analytic import count
    from designspace.evaluate.evaluation import Evaluation
    from designspace.evaluate.sources import Device, Measured, MeasurementError, latency_source
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    device = args.device if args.device not in (None, "", "local") else None
    if args.no_measure and device is None and args.latency == "measure":
        print("error: --no-measure leaves nothing to give without --device or a table (fix: add --device NAME, e.g. "
              "iphone13, or --latency table, or measure)", file=sys.stderr)
        return 2
    target = Device(device) if device is not None else None  # an unknown device: before anything is measured
    counts = count(arch)
    ev = Evaluation(arch.name, arch.fingerprint, counts.params, counts.macs,
                    prediction=target.estimate(arch).detail if target is not None else None)
    published = None
    if device is not None:
        from designspace.evaluate.devices.report import published_latency

        published = published_latency(arch, device)
    if not args.json:
        head = [f"{arch.name or args.arch}  fingerprint {arch.fingerprint}  {arch.resolution}x{arch.resolution}",
                f"params {ev.params:,} ({ev.params / 1e6:.3f} M)  MACs {ev.macs:,} ({ev.macs / 1e9:.4f} G)"]
        print("\n".join(head + (_prediction_lines(ev, published) if target is not None else [])), flush=True)
    table = None
    if args.latency != "measure":
        table = latency_source(args.latency, runtime=args.runtime, threads=args.threads,
                               batch=args.batch).estimate(arch).detail
    if not args.no_measure:
        # CUDA without a GPU is the request's error (raised here), not the network's failure
        here = Measured(args.runtime, args.threads, args.batch, cache=None if args.no_cache else Cache())
        try:  # its 10 s budget counts from here: the table's entries measured above are not the network's
            lat = here.estimate(arch).detail
            # the prediction made above, with this machine's figure kept beside it (not predicted again)
            ev = dataclasses.replace(ev, latency=lat, prediction=dataclasses.replace(ev.prediction, local_ms=lat.ms)
                                     if ev.prediction is not None else None)
        except MeasurementError as err:
            ev = dataclasses.replace(ev, status="failed", reason=str(err))
    if args.json:
        print(json.dumps({**ev.to_dict(), "resolution": arch.resolution, "published": published,
                          "table": table.to_dict() if table is not None else None}, indent=2))
        return 0 if ev.status == "ok" else 1
    lines = [_table_line(table)] if table is not None else []
    if ev.status != "ok":
        print("\n".join(lines))
        print(f"failed: {ev.reason}", file=sys.stderr)
        return 1
    lat, est = ev.latency, ev.measured
    if lat is not None and est is not None:
        lines.append(f"{est.label}: {est.text(named=False)}; {lat.context.describe()}")
        if lat.ratio is not None and lat.reference_ms is not None:
            lines.append(f"        {lat.ratio:.4f} x the reference network's {lat.reference_ms:.4f} ms (median ratio "
                         f"of {lat.processes} worker processes, {lat.spread:.1%} apart; fastest direct minimum "
                         f"{lat.direct_ms:.3f} ms), {lat.runs} runs, {lat.seconds:.1f} s")
        else:
            lines.append(f"        minimum of {lat.runs} runs in {lat.rounds} rounds (median {lat.median_ms:.3f} ms; "
                         f"the two fastest rounds {lat.spread:.1%} apart), {lat.seconds:.1f} s")
        if device is not None:
            lines.append("        (this machine, not the device: the device's figure is the prediction above)")
    if lines:
        print("\n".join(lines))
    return 0


def _prediction_lines(ev: Any, published: dict[str, Any] | None) -> list[str]:
    """The device's predicted latency, its fit, and the published figure where the network is a published point."""
    from designspace.evaluate.latency_estimate import LatencyEstimate

    pr = ev.prediction
    est = LatencyEstimate.from_prediction(pr)
    lines = [f"{est.label}: {est.text(named=False)}: cost model fitted on {pr.fit.points} published latencies, "
             f"leave-one-out error {pr.fit.loo_mean:.1%} mean, {pr.fit.loo_max:.1%} max"]
    top = sorted(pr.components, key=lambda c: -c[1])[:3]
    lines.append("        where the time goes: " + ", ".join(f"{n} {ms:.3f} ms" for n, ms in top))
    if published is not None:
        fit = (f"in the fit (predicted {published['loo_ms']:.3f} ms by the fit without it)"
               if published["in_fit"] and published["loo_ms"] is not None else
               "in the fit" if published["in_fit"] else "not in the fit: the prediction above never saw it")
        lines.append(f"latency on {pr.device}, published: {published['ms']:.3f} ms ({published['source']}, point "
                     f"{published['point']}); {fit}")
    return lines


def _table_line(table: Any) -> str:
    from designspace.evaluate.table.term import describe_fit

    fit = (f"fitted term {table.term_ms:+.3f} ms: {describe_fit(table.fit)}" if table.fit is not None
           else "no fitted term yet: designspace lut build SPACE fits it")
    interval = (f" (interval {table.ms * (1 - table.fit.loo_max):.3f}-{table.ms * (1 + table.fit.loo_max):.3f} ms)"
                if table.fit is not None else "")
    return (f"latency on local, table: {table.ms:.3f} ms{interval} from the per-block table: "
            f"{len(table.components)} entries {table.entries_ms:.3f} ms, {fit}"
            + (f"; {table.measured_now} entries measured now" if table.measured_now else "")
            + (f"; {table.predicted} predicted from their types' measured entries (--latency table-measured "
               "measures them)" if table.predicted else ""))


def _proxies(args: argparse.Namespace) -> int:
    from designspace.evaluate.accuracy.proxy_report import proxy_report
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    data = proxy_report(arch, proxies=tuple(args.proxy) if args.proxy else None, seed=args.seed, batch=args.batch)
    text = (f"{arch.name or args.arch}  fingerprint {arch.fingerprint}  seed {args.seed}, {args.batch} images\n"
            + table(data["rows"], [("proxy", "proxy"), ("value", "value (higher = more accurate)"), ("seconds", "s"),
                          ("collapsed", "collapsed because")])
            + f"\n\nThe search's default accuracy estimate is {data['default_estimate']!r}: the best-ranking estimate "
              "on the published models (docs/proxies.md).")
    emit(args, data, text)
    return 0


def _top1(args: argparse.Namespace) -> int:
    from designspace.evaluate.accuracy.top1 import predict_top1
    from designspace.network import load_arch

    arch = load_arch(args.arch)
    t = predict_top1(arch)
    data = {"name": arch.name, "fingerprint": arch.fingerprint, **t.to_dict()}
    text = (f"{arch.name or args.arch}: predicted ImageNet-1K top-1 {t} (95% interval {t.lo:.1f}-{t.hi:.1f} %)"
            + (f"  EXTRAPOLATED: {t.reason}" if t.extrapolated else "")
            + "\n(a bootstrap ensemble of ridge fits on the seed papers' published (Arch, top-1) points; "
              "docs/proxies.md gives its validation)")
    emit(args, data, text)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from designspace.evaluate.devices.report import device_rows, profile_rows

    if args.name:
        rows = profile_rows(args.name)
        cols: list[Column] = [("point", "point"), ("ms", f"latency ms on {args.name}, published", MS),
                              ("loo_pred_ms", f"latency ms on {args.name}, predicted without it", MS),
                              ("loo_error", "error", PERCENT)]
        emit(args, rows, table(rows, cols))
        return 0
    rows = device_rows()
    for r in rows:
        r["within"] = f"{r['within_10']:.0%}" if "within_10" in r else ""
    cols = [("name", "device"), ("points", "points"), ("fit", "fit"), ("loo", "leave-one-out error (mean / max)"),
            ("within", "within 10%"), ("prior", "prior"), ("description", "description")]
    text = table(rows, cols) + ("\n\nA device's latency is PREDICTED by its cost model (a sum over the network's "
                                "components, fitted on published latencies; docs/devices.md) with an interval and "
                                "the fit's leave-one-out error. `designspace devices NAME` lists its points.")
    emit(args, rows, text)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from designspace.evaluate.devices.report import calibrate_command

    report = calibrate_command(args.name, points=args.point or [], points_file=args.points,
                               description=args.description, source=args.source,
                               prior=None if args.prior == "none" else args.prior, out=args.out, force=args.force)
    cols: list[Column] = [("model", "point"), ("target_ms", f"latency ms on {args.name}, yours", MS),
                          ("loo_pred_ms", f"latency ms on {args.name}, predicted without it", MS),
                          ("loo_error", "error", PERCENT)]
    text = table(report["points"], cols) + (
        f"\n\n{report['name']}: cost model fitted with prior {report['prior'] or 'none'}, leave-one-out error "
        f"{report['loo_mean']:.1%} mean, {report['loo_max']:.1%} max" + (f"\nwritten to {report['file']}"
                                                                       if report["file"] else ""))
    emit(args, report, text)
    return 0


def _fit_devices(args: argparse.Namespace) -> int:
    from designspace.evaluate.devices.report import fit_command

    rows = fit_command(args.name or None, exclude=args.exclude or None, out=args.out, dry_run=args.dry_run)
    cols = [("name", "device"), ("points", "points"), ("loo", "leave-one-out error (mean / max)"),
            ("exclude", "held out"), ("file", "file")]
    shown = [r | {"exclude": ", ".join(r["exclude"]) or "-"} for r in rows]  # JSON keeps the list
    emit(args, rows, table(shown, cols) + ("\n\n(dry run: nothing written)" if args.dry_run else ""))
    return 0


def register(sub: Any) -> None:
    """Adds the commands of this group to the ``designspace`` subparsers."""
    p = sub.add_parser("eval", help="params, MACs and measured latency of an Arch (and its prediction on a device)")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    p.add_argument("--device", help="a device profile (designspace devices): predicts its latency with its "
                                    "interval, printed before the local measurement, and the published figure where "
                                    "the network is a published point")
    runtime_args(p)
    latency_arg(p, "with a table the network is also measured whole beside it, unless --no-measure")
    p.add_argument("--no-cache", action="store_true", help="measure again even if results/cache.sqlite has it")
    p.add_argument("--no-measure", action="store_true",
                   help="no local measurement: with --device the device's predicted latency only (milliseconds), "
                        "with a --latency table the table's figure only")
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

    p = sub.add_parser("top1", help="predicted ImageNet-1K top-1 of an Arch, with its interval")
    p.add_argument("arch", help="an Arch YAML file or a zoo name")
    json_arg(p)
    p.set_defaults(func=_top1)

    p = sub.add_parser("devices", help="device profiles (cost models fitted on published latencies) and their errors")
    p.add_argument("name", nargs="?", help="one profile: its points and leave-one-out predictions")
    json_arg(p)
    p.set_defaults(func=_devices)

    p = sub.add_parser("calibrate", help="a device profile fitted to your own measurements (e.g. Xcode's "
                                        "performance report), with a shipped device as the prior")
    p.add_argument("name", help="the new profile's name")
    p.add_argument("--point", action="append", metavar="ARCH=MS",
                   help="an Arch file or zoo name and its latency on your device in ms (repeat; about 10)")
    p.add_argument("--points", metavar="FILE", help="a CSV (arch,latency_ms) or YAML mapping of such points")
    p.add_argument("--prior", default="iphone13", help="the shipped device whose fit is the prior (default "
                                                       "iphone13; none for no prior)")
    p.add_argument("--description", default="", help="what the device is (hardware, runtime, batch)")
    p.add_argument("--source", default="", help="where the points come from")
    p.add_argument("--out", help="where to write the profile (default results/devices/NAME.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing profile file")
    json_arg(p)
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("fit-devices", help="refit the shipped device profiles from the data files (reproducible)")
    p.add_argument("name", nargs="*", help="profiles to refit (default all)")
    p.add_argument("--exclude", action="append", metavar="GROUP",
                   help="hold a point group out (iformer_table7, zoo, ...); needs --out or --dry-run")
    p.add_argument("--out", help="write into this folder instead of the shipped devices/")
    p.add_argument("--dry-run", action="store_true", help="fit and report; write nothing")
    json_arg(p)
    p.set_defaults(func=_fit_devices)
