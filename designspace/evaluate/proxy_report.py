"""``designspace proxies``: every training-free proxy of one network and the combined estimates, as rows."""

from __future__ import annotations

from typing import Any

from designspace.arch import Arch

__all__ = ["proxy_report"]


def proxy_report(arch: Arch, proxies: tuple[str, ...] | None = None, *, seed: int = 0, batch: int = 16
                 ) -> dict[str, Any]:
    """The proxies of ``arch`` (all, or ``proxies``) on ``batch`` seeded images, and each named combination
    whose parts were computed. Keys: the proxy scores' own fields, ``name``, ``default_estimate``, and
    ``rows`` (``proxy``, ``value``: higher means more accurate, ``seconds``: wall time of that proxy)."""
    from designspace.evaluate.estimate import COMBINATIONS, DEFAULT, combined
    from designspace.evaluate.proxies import PROXIES, compute_proxies

    scores = compute_proxies(arch, proxies or PROXIES, seed=seed, batch=batch)
    rows: list[dict[str, Any]] = [{"proxy": k, "value": round(v, 6), "seconds": round(scores.seconds[k], 3)}
                                  for k, v in scores.values.items()]
    for name, parts in COMBINATIONS.items():
        if all(p in scores.values for p in parts):
            rows.append({"proxy": name, "value": round(combined(scores.values, parts), 6), "seconds": None})
    return {**scores.to_dict(), "name": arch.name, "default_estimate": DEFAULT, "rows": rows}
