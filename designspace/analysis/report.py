"""``designspace analyze``: what a space or a study is like on a device, and two spaces side by side.

:func:`analyze` answers, for a :class:`~designspace.analysis.samples.SampleSet`:

1. which block type in which stage is fastest per MAC on the device: each network's blocks of one type in one stage,
   their device milliseconds (the cost model's per-component breakdown) over their GMACs; median and quartiles over
   the networks that have such blocks (:attr:`Analysis.block_costs`, fastest first);
2. which parameters explain each target (:mod:`designspace.analysis.importance`);
3. each categorical parameter's options: median and quartiles of latency per GMAC (networks where the parameter was
   active), of latency at matched MACs, of the other targets; and the options' EDFs of latency at matched MACs
   (:mod:`designspace.analysis.distributions`).

:func:`compare` puts two sample sets' EDFs side by side (:mod:`designspace.analysis.compare`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from designspace.analysis.compare import EdfComparison, compare_groups
from designspace.analysis.distributions import edf_at, matched_weights, summary
from designspace.analysis.importance import EVALUATORS, MIN_ACTIVE, importances, rated_params
from designspace.analysis.samples import SampleSet

__all__ = ["Analysis", "BlockCostRow", "Comparison", "OptionRow", "analyze", "compare"]

EDF_POINTS = 64  # points an option's EDF is reported at


@dataclass(frozen=True)
class BlockCostRow:
    """One block type in one stage: latency per GMAC of those blocks on the device (median, quartiles) over the
    ``networks`` that have them, and their median share of the network's latency."""

    stage: int
    type: str
    networks: int
    ms_per_gmac: float
    q1: float
    q3: float
    share: float


@dataclass(frozen=True)
class OptionRow:
    """One option of a categorical parameter, over the networks where the parameter was active.

    Attributes:
        param, option: the parameter and the option (as text).
        networks: how many networks.
        per_gmac: median, q1, q3 of latency per GMAC (ms/GMAC).
        matched: median, q1, q3 of latency (ms) with the options' MAC distributions equalized.
        medians: other targets' medians (unweighted).
        edf: the option's EDF of latency at matched MACs, at the parameter's ``grid``.
    """

    param: str
    option: str
    networks: int
    per_gmac: tuple[float, float, float]
    matched: tuple[float, float, float]
    medians: dict[str, float]
    edf: tuple[float, ...] = ()


@dataclass
class Analysis:
    """What :func:`analyze` found (see the module docstring); :meth:`to_dict` is the ``--json`` output and
    :meth:`to_text` what the command prints."""

    samples: SampleSet
    seed: int
    evaluators: tuple[str, ...]
    block_costs: list[BlockCostRow]
    importances: dict[str, dict[str, dict[str, float]]]
    options: dict[str, list[OptionRow]]
    grids: dict[str, tuple[float, ...]] = field(default_factory=dict)
    unrated: tuple[str, ...] = ()

    def ranking(self, target: str) -> list[tuple[str, float]]:
        """Parameters by their mean importance over the evaluators, highest first."""
        by = self.importances.get(target, {})
        total: dict[str, float] = defaultdict(float)
        for figures in by.values():
            for p, v in figures.items():
                total[p] += v / max(len(by), 1)
        return sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))

    def fastest_by_stage(self) -> dict[int, BlockCostRow]:
        """Each stage's block type with the lowest median latency per GMAC."""
        out: dict[int, BlockCostRow] = {}
        for r in self.block_costs:
            if r.stage not in out or r.ms_per_gmac < out[r.stage].ms_per_gmac:
                out[r.stage] = r
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        s = self.samples
        return {"name": s.name, "kind": s.kind, "description": s.description, "networks": len(s), "device": s.device,
                "latency_source": s.latency_source, "seed": self.seed, "evaluators": list(self.evaluators),
                "targets": [t.__dict__ for t in s.targets],
                "block_costs": [r.__dict__ for r in self.block_costs],
                "fastest_by_stage": {str(k): v.type for k, v in self.fastest_by_stage().items()},
                "importances": self.importances, "unrated": list(self.unrated),
                "options": {p: [{**r.__dict__, "edf": list(r.edf)} for r in rows] for p, rows in self.options.items()},
                "edf_grid": {p: list(g) for p, g in self.grids.items()}}

    def to_text(self, top: int = 8) -> str:
        """The report ``designspace analyze`` prints."""
        s = self.samples
        lat = s.target("latency_ms").label
        lines = [f"analyze {s.name}: {s.description}; latency on {s.device} ({s.latency_source})", ""]
        if len(s) < 30:
            lines += [f"(only {len(s)} networks: the importances and distributions below are rough)", ""]
        if not self.block_costs:
            lines += ["No per-block costs: the latency was measured whole, not predicted (fix: --device iphone13 "
                      "predicts every network block by block)", ""]
        if self.block_costs:
            fastest = self.fastest_by_stage()
            lines += [f"Fastest per MAC on {s.device}: " + "; ".join(
                f"stage {k}: {r.type} ({r.ms_per_gmac:.3g} ms/GMAC)" for k, r in sorted(fastest.items())), ""]
            lines.append(f"Fastest block type per MAC on {s.device}, by stage (the blocks' own latency per GMAC, "
                         f"ms/GMAC: median [quartiles], networks; share of the network's latency):")
            for stage in sorted({r.stage for r in self.block_costs}):
                rows = [r for r in self.block_costs if r.stage == stage]
                lines.append(f"  stage {stage}: " + "  <  ".join(
                    f"{r.type} {r.ms_per_gmac:.3g} [{r.q1:.3g}-{r.q3:.3g}] n={r.networks} ({r.share:.0%})"
                    for r in rows))
            lines.append("")
        names = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA", "mdi": "MDI"}
        if self.unrated:
            lines += [f"{len(self.unrated)} parameters shaped fewer than {MIN_ACTIVE:.0%} of the networks and are not "
                      "rated (an option's own parameters where the option is one of many; see their options below "
                      "and in --json)", ""]
        for target, by in self.importances.items():
            t = s.target(target)
            evs = [e for e in self.evaluators if e in by]
            lines.append(f"Importance for {t.label} ({' / '.join(names[e] for e in evs)}, seed {self.seed}):")
            rank = self.ranking(target)[:top]
            width = max((len(p) for p, _ in rank), default=10)
            for p, _ in rank:
                lines.append(f"  {p.ljust(width)}  " + "  ".join(f"{by[e].get(p, 0.0):.3f}" for e in evs))
            lines.append("")
        if self.options:
            others = [s.target(t).label for t in (self.options[next(iter(self.options))][0].medians)]
            lines.append(f"Options (networks where the parameter was active): latency per GMAC median [quartiles]; "
                         f"{lat} at matched MACs, median" + (f"; median {', '.join(others)}" if others else "")
                         + ":")
            shown = [p for p in self.options if _is_choice_of_block(p)] or list(self.options)
            for p in shown:
                options = sorted(self.options[p], key=lambda o: o.per_gmac[0])
                lines.append(f"  {p}: " + ";  ".join(
                    f"{o.option} {o.per_gmac[0]:.3g} [{o.per_gmac[1]:.3g}-{o.per_gmac[2]:.3g}] ms/GMAC, "
                    f"{_ms(o.matched[0])}" + "".join(f", {t} {v:.4g}" for t, v in o.medians.items())
                    + f" (n={o.networks})" for o in options))
        return "\n".join(lines).rstrip()


def _ms(x: float) -> str:
    return f"{x:.3g} ms" if math.isfinite(x) else "no MAC range shared with the other options"


def _is_choice_of_block(param: str) -> bool:
    """A segment's block type (``stages.2.segments.1.type``): the choices the first question is about."""
    parts = param.split(".")
    return len(parts) == 5 and parts[0] == "stages" and parts[2] == "segments" and parts[4] == "type"


def block_costs(samples: SampleSet) -> list[BlockCostRow]:
    """Latency per GMAC of each (stage, block type) over the networks that have it, fastest first in each stage."""
    per: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for net, blocks in enumerate(samples.blocks):
        total = samples.metrics["latency_ms"][net]
        agg: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for b in blocks:
            agg[(b.stage, b.type)][0] += b.ms
            agg[(b.stage, b.type)][1] += b.macs / 1e9
        for key, (ms, gmacs) in agg.items():
            if gmacs > 0:
                per[key].append((ms / gmacs, ms / total if total > 0 else math.nan))
    rows = []
    for (stage, type_), vals in per.items():
        x = np.array([v for v, _ in vals])
        sm = summary(x)
        rows.append(BlockCostRow(stage, type_, len(vals), sm.median, sm.q1, sm.q3,
                                 float(np.nanmedian([sh for _, sh in vals]))))
    return sorted(rows, key=lambda r: (r.stage, r.ms_per_gmac))


def option_rows(samples: SampleSet) -> tuple[dict[str, list[OptionRow]], dict[str, tuple[float, ...]]]:
    """Each categorical parameter's options (with two or more options among the networks where it was active)."""
    lat, macs = samples.metrics["latency_ms"], samples.metrics["macs_g"]
    per_gmac = samples.metrics["latency_ms_per_gmac"]
    others = [t.name for t in samples.targets if t.name not in ("latency_ms", "latency_ms_per_gmac")]
    out: dict[str, list[OptionRow]] = {}
    grids: dict[str, tuple[float, ...]] = {}
    for p in samples.params:
        if p.kind != "categorical":
            continue
        labels = np.array([str(v.get(p.name)) if p.name in a else "" for v, a in zip(samples.values, samples.active,
                                                                                     strict=True)])
        present = [str(o) for o in p.options if np.any(labels == str(o))] or sorted(set(labels) - {""})
        if len(present) < 2:
            continue
        masks = [labels == o for o in present]
        weights = matched_weights(macs, masks)
        pooled = np.concatenate([lat[w > 0] for w in weights]) if any(w.any() for w in weights) else lat[labels != ""]
        finite = pooled[np.isfinite(pooled)]
        grid = np.quantile(finite, np.linspace(0, 1, EDF_POINTS)) if len(finite) else np.array([])
        grids[p.name] = tuple(float(g) for g in grid)
        rows = []
        for o, m, w in zip(present, masks, weights, strict=True):
            g, mt = summary(per_gmac[m]), summary(lat, w)
            rows.append(OptionRow(p.name, p.option_name(o), int(m.sum()), (g.median, g.q1, g.q3),
                                  (mt.median, mt.q1, mt.q3),
                                  {t: float(np.nanmedian(samples.metrics[t][m])) for t in others},
                                  tuple(float(f) for f in edf_at(lat, w, grid))))
        out[p.name] = rows
    return out, grids


def analyze(samples: SampleSet, *, seed: int = 0, evaluators: tuple[str, ...] = EVALUATORS) -> Analysis:
    """Block costs, importances for every target, and every categorical parameter's options (module docstring)."""
    imps = importances(samples, [t.name for t in samples.targets], evaluators=evaluators, seed=seed)
    options, grids = option_rows(samples)
    rated = {p.name for p in rated_params(samples)}
    unrated = tuple(p.name for p in samples.params if p.name not in rated
                    and len({repr(v.get(p.name)) for v in samples.values}) > 1)
    return Analysis(samples, seed, tuple(evaluators), block_costs(samples), imps, options, grids, unrated)


@dataclass
class Comparison:
    """Two sample sets compared on each shared target at matched MACs (:func:`compare`)."""

    a: SampleSet
    b: SampleSet
    results: list[EdfComparison]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"a": {"name": self.a.name, "description": self.a.description},
                "b": {"name": self.b.name, "description": self.b.description}, "device": self.a.device,
                "comparisons": [c.to_dict() for c in self.results]}

    def to_text(self) -> str:
        """What ``designspace analyze --compare`` prints."""
        lines = [f"compare {self.a.name} ({self.a.description}) with {self.b.name} ({self.b.description}), "
                 f"latency on {self.a.device} ({self.a.latency_source})", ""]
        for c in self.results:
            lines.append(f"- {c.statement}")
            if c.grid:  # the two EDFs side by side at five points of the pooled range
                w = max(12, len(c.a) + 5, len(c.b) + 5)
                picks = sorted({int(q * (len(c.grid) - 1)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)})
                lines.append(f"    {'value':>10}  {'EDF ' + c.a:>{w}}  {'EDF ' + c.b:>{w}}")
                lines += [f"    {c.grid[k]:>10.4g}  {c.edf_a[k]:>{w}.3f}  {c.edf_b[k]:>{w}.3f}" for k in picks]
        return "\n".join(lines)


def compare(a: SampleSet, b: SampleSet, *, seed: int = 0, reps: int = 200) -> Comparison:
    """``a`` against ``b`` on every target both have (latency first), at matched MACs, with bootstrap intervals."""
    if not 10 <= reps <= 100_000:
        from designspace.exceptions import DesignspaceError

        raise DesignspaceError(f"--bootstrap {reps}: the sampling uncertainty needs 10 to 100,000 draws (fix: "
                               "--bootstrap 200)")
    if a.device != b.device or a.latency_source != b.latency_source:
        from designspace.exceptions import DesignspaceError

        raise DesignspaceError(f"{a.name}'s latency is on {a.device} ({a.latency_source}), {b.name}'s on {b.device} "
                               f"({b.latency_source}): they cannot be compared (fix: give --device for both)")
    n_a = len(a)
    macs = np.concatenate([a.metrics["macs_g"], b.metrics["macs_g"]])
    in_a = np.arange(n_a + len(b)) < n_a
    names = (a.name, b.name) if a.name != b.name else (f"{a.name} (A)", f"{b.name} (B)")
    results = []
    for t in a.targets:
        if t.name not in b.metrics or t.name == "latency_ms_per_gmac":
            continue  # latency per GMAC at matched MACs says what latency says
        values = np.concatenate([a.metrics[t.name], b.metrics[t.name]])
        unit = "ms" if t.name == "latency_ms" else ""
        results.append(compare_groups(values, macs, in_a, ~in_a, metric=t.name, label=t.label, direction=t.direction,
                                      names=names, reps=reps, seed=seed, unit=unit))
    return Comparison(a, b, results)
