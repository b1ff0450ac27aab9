"""``designspace sample``: random Archs from a space, optionally written to a folder."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from designspace.arch import Arch
from designspace.evaluate.counts.analytic import count
from designspace.space.core import Space

__all__ = ["draw_samples"]


def draw_samples(space: Space, n: int, seed: int = 0,
                 out: str | Path | None = None) -> list[tuple[Arch, dict[str, Any]]]:
    """``n`` Archs drawn from ``space`` with ``random.Random(seed)``, each with a row: ``fingerprint``,
    ``params`` and ``macs`` (exact; MACs per image), ``params_m``, ``macs_g`` (rounded), and ``file`` when ``out``
    is given: ``out/<space>-<fingerprint>.yaml``. A file already there is never overwritten (same fingerprint,
    same network)."""
    rng = random.Random(seed)
    folder = Path(out) if out is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    for _ in range(n):
        arch = space.sample(rng)
        c = count(arch)
        row: dict[str, Any] = {"fingerprint": arch.fingerprint, "params": c.params, "macs": c.macs,
                               "params_m": round(c.params_m, 3), "macs_g": round(c.macs_g, 4)}
        if folder is not None:
            path = folder / f"{space.name}-{arch.fingerprint}.yaml"
            if not path.exists():
                path.write_text(arch.to_yaml(), encoding="utf-8")
            row["file"] = str(path)
        drawn.append((arch, row))
    return drawn
