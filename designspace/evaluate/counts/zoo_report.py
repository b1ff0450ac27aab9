"""``designspace zoo``: our analytic counts of every published model beside its paper's figures."""

from __future__ import annotations

from designspace.evaluate.counts.analytic import count
from designspace.zoo import load, names, published_for

__all__ = ["rows"]


def _diff_pct(ours: float, paper: float | None) -> float | None:
    return None if not paper else round((ours / paper - 1.0) * 100.0, 2)


def rows() -> list[dict[str, object]]:
    """One row per zoo model: our analytic counts beside the paper's figures.

    Keys: ``name``, ``paper``, ``family``, ``params`` and ``macs`` (exact integers; MACs per image),
    ``params_m``, ``paper_params_m``, ``params_diff_pct``,
    ``macs_g``, ``paper_macs_g``, ``macs_diff_pct``, ``top1``, ``note`` (why a figure differs), and two
    counts under the conventions some papers used, for comparison: ``macs_no_norm_g`` (norm layers
    not counted, i.e. BatchNorm fused) and ``macs_no_attn_g`` (attention's matrix products left out).
    """
    out: list[dict[str, object]] = []
    for name in names():
        arch = load(name)
        meta = dict(arch.meta)
        pub = published_for(arch)
        c = count(arch)
        cat = c.by_category()
        out.append({
            "name": name,
            "paper": str(meta.get("published_as", "")),
            "family": str(meta.get("family", "")),
            "params": c.params,
            "macs": c.macs,
            "params_m": round(c.params_m, 3),
            "paper_params_m": pub.params_m if pub else None,
            "params_diff_pct": _diff_pct(c.params_m, pub.params_m if pub else None),
            "macs_g": round(c.macs_g, 4),
            "paper_macs_g": pub.macs_g if pub else None,
            "macs_diff_pct": _diff_pct(c.macs_g, pub.macs_g if pub else None),
            "macs_no_norm_g": round((c.macs - cat["norm"]) / 1e9, 4),
            "macs_no_attn_g": round((c.macs - cat["matmul"]) / 1e9, 4),
            "top1": pub.top1 if pub else None,
            "note": str(meta.get("note", "")),
        })
    return out
