"""``designspace proxies``: every training-free proxy of one network and the combined estimates, as rows."""

from __future__ import annotations

from typing import Any

from designspace.arch import Arch

__all__ = ["proxy_report"]


def proxy_report(arch: Arch, proxies: tuple[str, ...] | None = None, *, seed: int = 0, batch: int = 16
                 ) -> dict[str, Any]:
    """The proxies of ``arch`` (all, or ``proxies``) on ``batch`` seeded images, and each named combination
    whose parts were computed and none collapsed. Keys: the proxy scores' own fields (``collapsed``: proxy ->
    reason), ``name``, ``default_estimate``, and ``rows`` (``proxy``, ``value``: higher means more accurate,
    ``None`` for a collapsed proxy, ``seconds``: wall time of that proxy, ``collapsed``: the reason or ``None``)."""
    from designspace.evaluate.accuracy.estimate import COMBINATIONS, DEFAULT, combined
    from designspace.evaluate.accuracy.proxies import PROXIES, compute_proxies

    scores = compute_proxies(arch, proxies or PROXIES, seed=seed, batch=batch, on_collapse="record")
    rows: list[dict[str, Any]] = [
        {"proxy": k, "value": None if k in scores.collapsed else round(v, 6), "seconds": round(scores.seconds[k], 3),
         "collapsed": scores.collapsed.get(k)} for k, v in scores.values.items()]
    for name, parts in COMBINATIONS.items():
        if all(p in scores.values and p not in scores.collapsed for p in parts):
            rows.append({"proxy": name, "value": round(combined(scores.values, parts), 6), "seconds": None,
                         "collapsed": None})
    return {**scores.to_dict(), "name": arch.name, "default_estimate": DEFAULT, "rows": rows}
