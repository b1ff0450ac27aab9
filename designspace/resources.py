"""Will a network fit in this machine's memory? An estimate from the plan, before anything is built, so that an
absurd Arch (a width of 8192 at 4096 pixels) is refused with its figures instead of being killed by the kernel.

The estimate, in bytes, float32: weights = 4 x parameters (analytic count); activations of one forward pass at
batch ``B`` = the largest of, over the components, 4 x B x (input + widest hidden + output elements), where the
widest hidden tensor is the input's positions times ``max(in, out) x exp_ratio`` (1 without an expansion),
plus, for an attention component, its ``heads x N x N`` scores (``N`` the input positions: global attention,
an upper bound for windowed kinds). It errs high on purpose: it only has to tell absurd from plausible.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from designspace.arch import Arch
from designspace.exceptions import DesignspaceError
from designspace.plan import plan

__all__ = ["Footprint", "ResourceError", "available_memory", "check_fits", "footprint"]

#: share of the available memory a network may take (the rest: the runtime, its copies, the interpreter)
SHARE = 0.5


class ResourceError(DesignspaceError):
    """A network would not fit in this machine's memory."""


@dataclass(frozen=True)
class Footprint:
    """Estimated memory of a network, bytes (see the module docstring)."""

    weights: int
    activations: int
    peak_component: str

    @property
    def total(self) -> int:
        """Weights plus one forward pass's largest live activations, bytes."""
        return self.weights + self.activations


def footprint(arch: Arch, batch: int = 1) -> Footprint:
    """The memory estimate of ``arch`` at ``batch`` images (no model is built; microseconds to milliseconds)."""
    from designspace.evaluate.counts.analytic import count

    weights = 4 * count(arch).params
    peak, where = 0, ""
    for p in plan(arch):
        site, params = p.site, p.layer.kwargs()
        positions_in = site.hw[0] * site.hw[1]
        positions_out = p.out_hw[0] * p.out_hw[1]
        exp = params.get("exp_ratio", 1)
        exp = float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else 1.0
        hidden = positions_in * max(site.in_chs, site.out_chs) * max(exp, 1.0)
        elements = site.in_chs * positions_in + hidden + site.out_chs * positions_out
        if p.component.is_attention(params):
            heads = params.get("num_heads", 1)
            heads = heads if isinstance(heads, int) and heads > 0 else 1
            elements += heads * positions_in * positions_in
        if elements > peak:
            peak, where = int(elements), p.name
    return Footprint(weights, 4 * batch * peak, where)


def available_memory() -> int:
    """Memory available to this process now, bytes (``MemAvailable``; the physical size where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return 1 << 40


def check_fits(arch: Arch, batch: int = 1, what: str = "build and run") -> Footprint:
    """The footprint of ``arch``, or :class:`ResourceError` when it exceeds :data:`SHARE` of the available
    memory, with the estimate and the component that needs the most in the message."""
    fp = footprint(arch, batch)
    limit = int(available_memory() * SHARE)
    if fp.total > limit:
        gib = 1 << 30
        raise ResourceError(
            f"{arch.name or arch.fingerprint}: too large to {what} here: about {fp.total / gib:,.1f} GiB "
            f"(weights {fp.weights / gib:,.2f} GiB, activations {fp.activations / gib:,.1f} GiB at batch {batch}, "
            f"most in {fp.peak_component}) of {limit / gib:,.1f} GiB allowed (fix: lower the resolution or the "
            "widths, or use a machine with more memory)")
    return fp
