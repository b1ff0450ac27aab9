"""Device cost models: how well published latencies are predicted from the Arch alone, and whether the intervals hold.

Run: python benchmarks/bench_devices.py [--json] [--devices NAME,...]

Part A, every shipped device profile (its own features, groups and prior, as `fit-devices` fits it): points;
leave-one-out and leave-one-group-out mean/max relative error and share within 10% (the ridge strength chosen
again inside every fit); Kendall tau between predicted and published latency; and the coverage of the stated
90% interval on held-out points: each point's interval from the model fitted without it (and without its
group), split into points in range (no feature outside the fitted points' range) and out of range, with the
refusals counted apart (a refusal gives no interval; it is neither a hit nor a miss). Groups: the points'
groups, or for a device whose points are one group (the MobileNetV4 paper's phones), the Arch's family
(MobileNetV2, MobileNetV3, MobileNetV4, ConvNeXt). Goal (issue 30): the 90% interval holds >= 85% of held-out
points, in range and out of range alike.

Part A2, the points a profile holds out of its fit (its ``exclude``: the iPhone 13's Table 5, 512 px), predicted
by the shipped profile: goal, an interval that contains the published figure or a refusal in words.

Part B, the iPhone 13 in detail (as before issue 30):

Points: every published iPhone 13 latency in the data files (the zoo's, from 003 Table 3, and the iFormer
paper's design-space study: the ConvNeXt-to-iFormer roadmap of Sec. 3 with Tables 1-2, Table 6, Table 7),
fitted once per (network, latency) as the shipped profile does.

1. Leave-one-out: each point predicted by the cost model fitted on all the others (the ridge strength chosen
   again inside each fit, by leave-one-out on its own points: nothing is tuned on the held-out point).
2. Leave-one-group-out: each group (zoo, roadmap, Table 6, Table 7) predicted by the model fitted on the other
   groups only.
3. Kendall tau between predicted and published latency within Table 7 and within the roadmap, from the
   group-held-out predictions (and from the leave-one-out ones).
4. Beside it, two baselines:
   * ``affine on local CPU latency``: designspace's previous device model (target = a + b * local ONNX
     Runtime latency, least squares on relative errors), on the 8 zoo models whose local latencies the
     previous profile shipped (``LOCAL_MS`` below, measured 2026-11-21 on the 2-core AMD EPYC development
     host, ONNX Runtime 1.31.1, 1 thread; devices/iphone13.yaml before commit 14820b9). It has no local
     latency for the study's networks (measuring them on the shared host now would be noise), so it has
     leave-one-out figures on those 8 points only;
   * ``GMACs + constant``: the cost model's fitter with only MACs and a per-network constant as features.

Goal (issue 12): mean <= 10%, max <= 25%, tau >= 0.7 on Table 7 held out as a group.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from local_map import (
    fit as local_fit,  # the baseline, beside this benchmark (run as a script: its folder is on the path)
)
from local_map import loo_predictions as local_loo

from designspace.evaluate.devices.costmodel import CostModel, FitError, fit_cost_model
from designspace.evaluate.devices.document import DeviceProfile
from designspace.evaluate.devices.features import FEATURES, network_features
from designspace.evaluate.devices.profiles import _prior_coef, list_devices
from designspace.evaluate.points import Point, load_points

#: part B's groups, as the shipped iPhone 13 profile fits them (its Table 5, 512 px, is held out: part A2)
GROUPS = {"zoo": "zoo", "iformer_roadmap": "roadmap", "iformer_table6": "Table 6", "iformer_table7": "Table 7"}
LOCAL_MS = {"mobilenetv2_100": 8.9037, "mobilenetv2_140": 16.4715, "efficientmod_xxs": 20.4569,
            "efficientmod_s": 48.2306, "iformer_t": 15.3958, "iformer_s": 31.5525, "iformer_m": 48.8354,
            "iformer_l": 78.5245}
MACS_ONLY = ("conv_gmacs", "pw_gmacs", "dw_gmacs", "attn_gmacs", "const")


def _points() -> list[Point]:
    out, seen = [], set()
    for p in load_points(list(GROUPS)):
        ms = p.latency_ms.get("iphone13")
        if ms is None or (p.arch.fingerprint, ms) in seen:
            continue
        seen.add((p.arch.fingerprint, ms))
        out.append(p)
    return out


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b between two sequences (ties in either count as neither concordant nor discordant)."""
    conc = disc = ta = tb = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ta += 1
            elif db == 0:
                tb += 1
            elif da == db:
                conc += 1
            else:
                disc += 1
    denom = np.sqrt((conc + disc + ta) * (conc + disc + tb))
    return float((conc - disc) / denom) if denom else float("nan")


def _errors(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    if not len(y):
        return {"n": 0, "mean": float("nan"), "max": float("nan"), "within_10": float("nan")}
    e = np.abs(pred - y) / y
    return {"n": len(y), "mean": float(e.mean()), "max": float(e.max()), "within_10": float((e <= 0.10).mean())}


def _loo(x: np.ndarray, y: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    pred = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        model = fit_cost_model(x[keep], y[keep], features)
        pred[i] = model.predict(dict(zip(features, x[i], strict=True)))
    return pred


def _logo(x: np.ndarray, y: np.ndarray, groups: list[str], features: tuple[str, ...]) -> np.ndarray:
    pred = np.empty(len(y))
    for g in GROUPS:
        held = np.array([gg == g for gg in groups])
        model = fit_cost_model(x[~held], y[~held], features)
        for i in np.flatnonzero(held):
            pred[i] = model.predict(dict(zip(features, x[i], strict=True)))
    return pred


def _device_points(prof: DeviceProfile) -> tuple[list[Point], np.ndarray, np.ndarray, list[str]]:
    """The profile's points as its fit selects them, their feature totals, latencies and groups."""
    pts, seen = [], set()
    for p in load_points(prof.groups):
        ms = p.latency_ms.get(prof.column)
        if ms is None or p.group in prof.exclude or (p.arch.fingerprint, ms) in seen:
            continue
        seen.add((p.arch.fingerprint, ms))
        pts.append(p)
    x = np.array([[network_features(p.arch)[f] for f in prof.features] for p in pts])
    y = np.array([p.latency_ms[prof.column] for p in pts])
    groups = [p.group for p in pts]
    if len(set(groups)) < 2:
        groups = [str(dict(p.arch.meta).get("family", "other")) for p in pts]
    return pts, x, y, groups


def _held_out(x: np.ndarray, y: np.ndarray, feats: tuple[str, ...], prior: list[float] | None,
              held: np.ndarray) -> list[dict[str, Any]]:
    """The model fitted without the ``held`` points, on each of them: prediction, interval or refusal, range."""
    try:
        model: CostModel | None = fit_cost_model(x[~held], y[~held], feats, prior=prior)
    except FitError:
        model = None
    out = []
    for i in np.flatnonzero(held):
        if model is None:
            out.append({"i": int(i), "pred": float("nan"), "refused": "no fit without them", "inside": False,
                        "in_range": False})
            continue
        totals = dict(zip(feats, x[i], strict=True))
        pred = model.predict(totals)
        refusal = model.refusal(totals)
        lo, hi = model.interval(pred, totals)
        out.append({"i": int(i), "pred": pred, "refused": refusal, "inside": bool(lo <= y[i] <= hi),
                    "in_range": not model.outside(totals) and not refusal, "low": lo, "high": hi})
    return out


def _coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    res: dict[str, Any] = {"refused": sum(1 for r in rows if r["refused"])}
    for label, want in (("in_range", True), ("out_of_range", False)):
        given = [r for r in rows if not r["refused"] and r["in_range"] == want]
        res[label] = (sum(r["inside"] for r in given), len(given))
    given = [r for r in rows if not r["refused"]]
    res["all"] = (sum(r["inside"] for r in given), len(given))
    return res


def device_figures(prof: DeviceProfile) -> dict[str, Any]:
    """Part A's figures for one profile."""
    pts, x, y, groups = _device_points(prof)
    prior = _prior_coef(prof)
    n = len(y)
    loo = [_held_out(x, y, prof.features, prior, np.arange(n) == i)[0] for i in range(n)]
    logo: list[dict[str, Any]] = []
    for g in dict.fromkeys(groups):
        logo.extend(_held_out(x, y, prof.features, prior, np.array([gg == g for gg in groups])))
    logo.sort(key=lambda r: r["i"])
    out: dict[str, Any] = {"points": n, "groups": dict((g, groups.count(g)) for g in dict.fromkeys(groups))}
    for label, rows in (("loo", loo), ("logo", logo)):
        ok = [r for r in rows if np.isfinite(r["pred"])]
        pred, yy = np.array([r["pred"] for r in ok]), y[[r["i"] for r in ok]]
        out[label] = {**_errors(pred, yy), "tau": kendall_tau(list(pred), list(yy)), "coverage": _coverage(rows),
                      "unfitted": n - len(ok),
                      "refusals": [(pts[r["i"]].id, r["refused"]) for r in rows if r["refused"]],
                      "misses": [(pts[r["i"]].id, float(y[r["i"]]), round(r["low"], 3), round(r["high"], 3))
                                 for r in rows if not r["refused"] and not r["inside"]]}
    return out


def run_devices(names: list[str] | None = None) -> dict[str, Any]:
    """Part A: every shipped profile's figures (or the named ones)."""
    return {p.name: device_figures(p) for p in list_devices()
            if p.model is not None and p.column != "user" and (names is None or p.name in names)}


def held_out_checks() -> list[dict[str, Any]]:
    """Part A2: each shipped profile's held-out groups (``exclude``), predicted by the shipped profile that never
    saw them: published and predicted ms, the 90% interval or the refusal, and whether the interval holds."""
    rows = []
    for prof in list_devices():
        if prof.model is None or not prof.exclude:
            continue
        for pt in load_points(list(prof.exclude)):
            ms = pt.latency_ms.get(prof.column)
            if ms is None:
                continue
            pr = prof.predict(pt.arch)
            rows.append({"device": prof.name, "point": pt.id, "published_ms": ms, "predicted_ms": pr.ms,
                         "low_ms": None if pr.refusal else pr.low, "high_ms": None if pr.refusal else pr.high,
                         "refusal": pr.refusal, "inside": (not pr.refusal) and pr.low <= ms <= pr.high})
    return rows


def print_held_out(rows: list[dict[str, Any]]) -> None:
    print("\nA2. points a profile holds out of its fit (checks, never fitted), predicted by the shipped profile")
    for r in rows:
        verdict = (f"refused: {r['refusal']}" if r["refusal"] else
                   f"90% interval {r['low_ms']:.2f}-{r['high_ms']:.2f} ms, "
                   + ("contains it" if r["inside"] else "does NOT contain it"))
        print(f"  {r['device']} {r['point']}: published {r['published_ms']:.2f} ms, predicted "
              f"{r['predicted_ms']:.2f} ms; {verdict}")
    bad = [r for r in rows if not r["refusal"] and not r["inside"]]
    print(f"goal: an interval that contains the published figure, or a refusal: "
          f"{'met' if not bad else 'NOT met'} ({len(rows) - len(bad)} of {len(rows)})")


def run() -> dict[str, Any]:
    """Part B's figures (the iPhone 13 in detail), as a dict."""
    pts = _points()
    y = np.array([p.latency_ms["iphone13"] for p in pts])
    groups = [p.group for p in pts]
    totals = [network_features(p.arch) for p in pts]
    out: dict[str, Any] = {"points": len(pts), "by_group": {GROUPS[g]: groups.count(g) for g in GROUPS}}
    for label, feats in (("cost model", FEATURES), ("GMACs + constant", MACS_ONLY)):
        x = np.array([[t[f] for f in feats] for t in totals])
        loo, logo = _loo(x, y, feats), _logo(x, y, groups, feats)
        res: dict[str, Any] = {"loo": _errors(loo, y), "logo": _errors(logo, y), "logo_by_group": {}, "tau": {}}
        for g, name in GROUPS.items():
            idx = [i for i, gg in enumerate(groups) if gg == g]
            res["logo_by_group"][name] = _errors(logo[idx], y[idx])
            res["loo"].setdefault("by_group", {})[name] = _errors(loo[idx], y[idx])
        for g in ("iformer_table7", "iformer_roadmap"):
            idx = [i for i, gg in enumerate(groups) if gg == g]
            res["tau"][GROUPS[g]] = {"held_out_group": kendall_tau(list(logo[idx]), list(y[idx])),
                                     "loo": kendall_tau(list(loo[idx]), list(y[idx]))}
        res["worst"] = sorted(((float(abs(loo[i] - y[i]) / y[i]), pts[i].id, float(y[i]), float(loo[i]))
                               for i in range(len(y))), reverse=True)[:5]
        out[label] = res
    names = list(LOCAL_MS)
    ys = [next(p.latency_ms["iphone13"] for p in pts if p.id == n) for n in names]
    xs = [LOCAL_MS[n] for n in names]
    base = {}
    for form in ("affine", "auto"):
        f = local_fit(xs, ys, form)
        pred = np.array(local_loo(xs, ys, f.form))
        base[form] = {"form": f.form, **_errors(pred, np.array(ys))}
    cost = out["cost model"]
    zoo8 = [i for i, p in enumerate(pts) if p.id in LOCAL_MS]
    x = np.array([[t[f] for f in FEATURES] for t in totals])
    pred_all = _loo(x, y, FEATURES)
    base["cost model, same 8 zoo points (LOO over all points)"] = _errors(pred_all[zoo8], y[zoo8])
    out["baseline_local_cpu"] = base
    out["goal_met"] = {"mean": cost["loo"]["mean"] <= 0.10, "max": cost["loo"]["max"] <= 0.25,
                       "tau_table7_held_out": cost["tau"]["Table 7"]["held_out_group"] >= 0.7}
    return out


def _line(label: str, e: dict[str, float]) -> str:
    return f"  {label:<46} n={e['n']:>2}  mean {e['mean']:6.1%}  max {e['max']:6.1%}  within 10% {e['within_10']:5.0%}"


def _frac(pair: tuple[int, int]) -> str:
    return f"{pair[0]:>2}/{pair[1]:<2} {pair[0] / pair[1]:4.0%}" if pair[1] else " 0/0  -  "


def print_devices(figs: dict[str, Any]) -> None:
    """Part A as a table, then each device's misses and refusals."""
    print("A. every device: held-out error, ranking and the coverage of the stated 90% interval")
    print(f"{'device':<16} {'n':>3}  {'LOO mean/max  <=10%':<21} {'LOGO mean/max  <=10%':<21} {'tau LOO/LOGO':<13} "
          f"{'LOO cover: in range | out | refused':<38} LOGO cover: in range | out | refused")
    total = {"in_range": [0, 0], "out_of_range": [0, 0]}
    for name, f in figs.items():
        lo, lg = f["loo"], f["logo"]
        cells = []
        for r in (lo, lg):
            c = r["coverage"]
            cells.append(f"{_frac(c['in_range'])} | {_frac(c['out_of_range'])} | {c['refused']:>2}")
            for k in total:
                total[k][0] += c[k][0]
                total[k][1] += c[k][1]
        def err(r: dict[str, Any]) -> str:
            if not r["n"]:
                return f"{'no fit':<19}"
            return f"{r['mean']:5.1%}/{r['max']:6.1%} {r['within_10']:4.0%} "

        def tau(t: float) -> str:
            return "  -  " if np.isnan(t) else f"{t:+.2f}"

        print(f"{name:<16} {f['points']:>3}  {err(lo)} {err(lg)} {tau(lo['tau'])}/{tau(lg['tau'])}   "
              f"{cells[0]:<38} {cells[1]}")
    for name, f in figs.items():
        for label in ("loo", "logo"):
            r = f[label]
            what = "leave-one-out" if label == "loo" else "group held out"
            if r["misses"]:
                print(f"  {name} {what}, outside the interval: " + "; ".join(
                    f"{pid} {yy:g} not in [{lo:g}, {hi:g}]" for pid, yy, lo, hi in r["misses"]))
            if r["refusals"]:
                print(f"  {name} {what}, refused: " + "; ".join(f"{pid} ({why})" for pid, why in r["refusals"]))
            if r["unfitted"]:
                print(f"  {name} {what}: {r['unfitted']} point(s) whose group leaves too few points to fit")
    share = {k: (v[0] / v[1] if v[1] else float("nan")) for k, v in total.items()}
    print(f"\ngoal: held-out points inside the 90% interval >= 85% (LOO and LOGO together): in range "
          f"{total['in_range'][0]}/{total['in_range'][1]} = {share['in_range']:.0%} "
          f"{'met' if share['in_range'] >= 0.85 else 'NOT met'}, out of range {total['out_of_range'][0]}/"
          f"{total['out_of_range'][1]} = {share['out_of_range']:.0%} "
          f"{'met' if share['out_of_range'] >= 0.85 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--devices", help="comma-separated profiles for part A (default: every shipped one)")
    parser.add_argument("--no-detail", action="store_true", help="skip part B (the iPhone 13 in detail)")
    args = parser.parse_args()
    figs = run_devices(args.devices.split(",") if args.devices else None)
    checks = held_out_checks()
    out = {} if args.no_detail else run()
    if args.json:
        print(json.dumps({"devices": figs, "held_out_checks": checks, "iphone13_detail": out}, indent=2,
                         default=str))
        return
    print_devices(figs)
    print_held_out(checks)
    if args.no_detail:
        return
    print("\nB. the iPhone 13 in detail")
    print(f"iPhone 13 points: {out['points']} ({', '.join(f'{k} {v}' for k, v in out['by_group'].items())})")
    for label in ("cost model", "GMACs + constant"):
        r = out[label]
        print(f"\n{label}")
        print(_line("leave-one-out, all points", r["loo"]))
        for g, e in r["loo"]["by_group"].items():
            print(_line(f"  leave-one-out, {g}", e))
        print(_line("leave-one-group-out, all points", r["logo"]))
        for g, e in r["logo_by_group"].items():
            print(_line(f"  {g} held out", e))
        for g, t in r["tau"].items():
            print(f"  Kendall tau within {g}: {t['held_out_group']:+.2f} held out as a group, {t['loo']:+.2f} "
                  "leave-one-out")
        print("  worst leave-one-out: " + "; ".join(f"{pid} {yy:.2f} -> {pp:.2f} ({e:.0%})"
                                                      for e, pid, yy, pp in r["worst"]))
    print("\nbaseline: local CPU latency mapped to the phone (8 zoo models with shipped local latencies)")
    for label, e in out["baseline_local_cpu"].items():
        print(_line(f"leave-one-out, {label}" + (f" ({e['form']})" if "form" in e else ""), e))
    g = out["goal_met"]
    print(f"\ngoal: mean <= 10% {'met' if g['mean'] else 'NOT met'}, max <= 25% {'met' if g['max'] else 'NOT met'}, "
          f"tau >= 0.7 on Table 7 held out {'met' if g['tau_table7_held_out'] else 'NOT met'}")


if __name__ == "__main__":
    main()
