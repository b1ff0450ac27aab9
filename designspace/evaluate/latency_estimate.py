"""``LatencyEstimate``: one latency figure with everything a reader needs to trust it.

Every latency designspace prints or writes is one of these: a value in milliseconds, the device it refers to
(``"local"``, this machine, or a device profile name such as ``iphone13``), where it comes from (``source``), an
interval, the context it was obtained in, flags, and whether it extrapolates. The sources:

* ``measured``: timed here (:mod:`designspace.evaluate.measure.latency`). Its interval is the repeatability of a
  measurement on this host: ``value x (1 -+ max(spread, MIN_NOISE))``, the spread of the figure's two fastest
  rounds, at least the 5% that independent 3 s measurements on the shared development host differed by
  (docs/latency.md).
* ``table``: the sum of the network's per-block table entries with the fitted per-network term
  (:mod:`designspace.evaluate.table.entries`). Its interval is ``value x (1 -+ loo_max)``, the term's worst
  leave-one-out error on the networks measured whole; none without a fitted term.
* ``predicted``: a device profile's cost model (:mod:`designspace.evaluate.devices.profiles`). Its interval is the
  profile's, from the fit's leave-one-out residuals; ``extrapolation`` lists the network's features outside
  what the fit saw.

The same estimate is a row's columns in ``trials.csv`` (:meth:`LatencyEstimate.columns`,
:meth:`LatencyEstimate.from_columns`, which also reads studies written before these columns existed) and a JSON
object (:meth:`LatencyEstimate.to_dict`). This module imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from designspace.exceptions import DesignspaceError

if TYPE_CHECKING:
    from designspace.evaluate.devices.document import Prediction
    from designspace.evaluate.measure.latency import Latency
    from designspace.evaluate.table.entries import TableLatency

__all__ = ["LATENCY_CHOICES", "LOCAL", "MIN_NOISE", "SOURCES", "LatencyEstimate", "budget_verdict", "check_latency",
           "describe_column", "latency_word", "study_latency"]

#: What a latency figure can come from.
SOURCES = ("measured", "table", "predicted")
#: The device name of this machine.
LOCAL = "local"
#: ``--latency`` on every command (``eval``, ``search``), how a latency on this machine is obtained
#: (:func:`designspace.evaluate.sources.latency_source`): ``measure`` (the network measured whole), ``table`` (the
#: per-block table, a missing entry predicted where its type's model holds, else measured) or ``table-measured``
#: (the per-block table, every missing entry measured). With either table, ``eval`` also measures the network
#: whole beside it (unless ``--no-measure``), and a search measures its Pareto front whole.
LATENCY_CHOICES = ("measure", "table", "table-measured")
#: an older spelling still read: ``eval --latency both`` was the table beside the measurement
_LATENCY_ALIASES = {"both": "table-measured"}


def latency_word(text: str) -> str:
    """``--latency``'s word as :data:`LATENCY_CHOICES` spells it (an older spelling mapped to its meaning now;
    anything else returned unchanged, for the caller to refuse)."""
    return _LATENCY_ALIASES.get(text, text)


def check_latency(word: str) -> str:
    """``word`` if it is one of :data:`LATENCY_CHOICES`.

    Raises:
        DesignspaceError: any other word, with the choices and what each does.
    """
    if word not in LATENCY_CHOICES:
        raise DesignspaceError(f"--latency {str(word)[:40]!r} is not one of {', '.join(LATENCY_CHOICES)} "
                               "(fix: --latency measure to measure each network whole, --latency table for the "
                               "per-block table, --latency table-measured for the table with no entry predicted)")
    return word


#: The smallest relative difference between two measurements called real: the minimum-of-runs estimator's spread
#: between independent 3 s measurements on the shared development host was 4.0-4.8% (docs/latency.md).
MIN_NOISE = 0.05


@dataclass(frozen=True)
class LatencyEstimate:
    """One latency figure (see the module docstring).

    Attributes:
        value_ms: milliseconds per run (one batch).
        device: ``"local"`` (this machine) or a device profile name (``"iphone13"``).
        source: ``"measured"``, ``"table"`` or ``"predicted"``.
        lo_ms, hi_ms: the interval's ends in milliseconds, or ``None`` when the source gives none.
        context: what the figure depends on besides the network: for ``measured``/``table`` the local measurement
            context (runtime, version, machine, threads, batch, ...); for ``predicted`` the profile's fit
            (``fit``, ``points``, ``loo_mean_error``, ``loo_max_error``). Plain JSON values.
        flags: the measurement's flags (``noisy``, ``unconfirmed``, ...), or the table's
            (``entries-predicted``: some entries were predicted, not measured).
        extrapolation: for ``predicted``, the network's features outside the fit's range (empty: none).
    """

    value_ms: float
    device: str
    source: str
    lo_ms: float | None = None
    hi_ms: float | None = None
    context: Mapping[str, Any] = field(default_factory=dict, compare=False)
    flags: tuple[str, ...] = ()
    extrapolation: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise DesignspaceError(f"latency source must be one of {', '.join(SOURCES)}, but got {self.source!r}")
        if not self.device:
            raise DesignspaceError("a latency figure needs its device (\"local\" or a profile name)")

    # ------------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_measurement(cls, lat: Latency, device: str = LOCAL) -> LatencyEstimate:
        """A local measurement (:class:`designspace.evaluate.measure.latency.Latency`) with its repeatability
        interval."""
        from dataclasses import asdict

        noise = max(float(lat.spread), MIN_NOISE)
        return cls(lat.ms, device, "measured", lat.ms * (1 - noise), lat.ms * (1 + noise), asdict(lat.context),
                   tuple(lat.flags))

    @classmethod
    def from_prediction(cls, pr: Prediction) -> LatencyEstimate:
        """A device profile's prediction (:class:`designspace.evaluate.devices.document.Prediction`)."""
        context = {"fit": pr.fit.form, "points": pr.fit.points, "loo_mean_error": pr.fit.loo_mean,
                   "loo_max_error": pr.fit.loo_max}
        if pr.refusal:  # outside anything the device's data say: no interval, and why, in words
            return cls(pr.ms, pr.device, "predicted", None, None, context, (f"no interval: {pr.refusal}",),
                       tuple(pr.outside))
        return cls(pr.ms, pr.device, "predicted", pr.low, pr.high, context, (), tuple(pr.outside))

    @classmethod
    def from_table(cls, tab: TableLatency, context: Mapping[str, Any]) -> LatencyEstimate:
        """A per-block table latency (:class:`designspace.evaluate.table.entries.TableLatency`) in a local ``context``
        (the measurement context's fields)."""
        lo = hi = None
        ctx = dict(context)
        if tab.fit is not None:
            lo, hi = tab.ms * (1 - tab.fit.loo_max), tab.ms * (1 + tab.fit.loo_max)
            ctx.update(loo_mean_error=tab.fit.loo_mean, loo_max_error=tab.fit.loo_max)
        flags = ("entries-predicted",) if tab.predicted else ()
        return cls(tab.ms, LOCAL, "table", lo, hi, ctx, flags)

    # ------------------------------------------------------------------------------------------ reading
    @property
    def extrapolated(self) -> bool:
        """Whether the figure lies outside what its fit saw (a prediction only)."""
        return bool(self.extrapolation)

    @property
    def label(self) -> str:
        """``"latency on iphone13, predicted"``."""
        return f"latency on {self.device}, {self.source}"

    def header(self, unit: str = "ms") -> str:
        """A table column header: ``"latency ms on iphone13, predicted"``."""
        return describe_column(self.device, self.source, unit)

    def interval_text(self, digits: int = 3) -> str:
        """``"0.903-1.203"`` (ms), ``"-"`` without an interval."""
        if self.lo_ms is None or self.hi_ms is None:
            return "-"
        return f"{self.lo_ms:.{digits}f}-{self.hi_ms:.{digits}f}"

    def text(self, digits: int = 3, named: bool = True, extrapolation: bool = True) -> str:
        """One phrase: ``"1.040 ms on iphone13, predicted (interval 0.903-1.203 ms)"``, then the flags and the
        extrapolation; without ``named`` the device and source are left to the caller (after :attr:`label`), without
        ``extrapolation`` the extrapolated features too."""
        out = f"{self.value_ms:.{digits}f} ms" + (f" on {self.device}, {self.source}" if named else "")
        if self.lo_ms is not None and self.hi_ms is not None:
            out += f" (interval {self.interval_text(digits)} ms)"
        if self.flags:
            out += f" [{', '.join(self.flags)}]"
        if self.extrapolated and extrapolation:
            out += f" EXTRAPOLATED ({'; '.join(self.extrapolation)})"
        return out

    # ------------------------------------------------------------------------------------------ forms
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``value_ms``, ``lo_ms``, ``hi_ms``, ``device``, ``source``, ``context``, ``flags``,
        ``extrapolated``, ``extrapolation``)."""
        return {"value_ms": self.value_ms, "lo_ms": self.lo_ms, "hi_ms": self.hi_ms, "device": self.device,
                "source": self.source, "context": dict(self.context), "flags": list(self.flags),
                "extrapolated": self.extrapolated, "extrapolation": list(self.extrapolation)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyEstimate:
        """Inverse of :meth:`to_dict`."""
        return cls(float(data["value_ms"]), str(data["device"]), str(data["source"]), _opt(data.get("lo_ms")),
                   _opt(data.get("hi_ms")), dict(data.get("context") or {}), tuple(data.get("flags") or ()),
                   tuple(data.get("extrapolation") or ()))

    def columns(self) -> dict[str, Any]:
        """The trial row's latency columns: ``latency_ms`` (the one latency column), ``latency_low_ms``,
        ``latency_high_ms`` (its interval; empty without one), ``latency_device``, ``latency_source``,
        ``latency_extrapolated``, ``latency_extrapolation`` (the features outside the fit, ``; ``-separated) and
        ``latency_flags`` (comma-separated)."""
        return {"latency_ms": self.value_ms, "latency_low_ms": self.lo_ms, "latency_high_ms": self.hi_ms,
                "latency_device": self.device, "latency_source": self.source,
                "latency_extrapolated": self.extrapolated, "latency_extrapolation": "; ".join(self.extrapolation),
                "latency_flags": ",".join(self.flags)}

    @classmethod
    def from_columns(cls, row: Mapping[str, Any], device: str | None = None) -> LatencyEstimate | None:
        """The estimate a trial row (``trials.csv`` strings or Python values) holds, or ``None`` without a latency.

        Reads studies written before these columns existed: ``latency_source`` was ``"predicted: DEVICE"`` or
        ``"table"`` or absent (a local measurement, or a prediction where ``latency_predicted`` is true); the
        device was the row's ``device`` column (``device`` here is the fallback: the study's device); a
        measurement's interval was the value itself, and a table figure had none.
        """
        value = _opt(row.get("latency_ms"))
        if value is None:
            return None
        source = str(row.get("latency_source") or "")
        dev = str(row.get("latency_device") or "")
        if source.startswith("predicted:"):  # before the estimate: "predicted: iphone13"
            source, dev = "predicted", dev or source.partition(":")[2].strip()
        if not source:
            source = "predicted" if _truthy(row.get("latency_predicted")) else "measured"
        dev = dev or str(row.get("device") or "") or device or LOCAL
        if source != "predicted" and not row.get("latency_device"):
            dev = LOCAL  # an old row's device column named the study's device, also for its local figures
        lo, hi = _opt(row.get("latency_low_ms")), _opt(row.get("latency_high_ms"))
        if source == "measured" and (lo is None or lo == hi == value):  # old rows: the value itself, not an interval
            lo = hi = None
        flags = tuple(f for f in str(row.get("latency_flags") or "").split(",") if f)
        extrapolation = tuple(x for x in str(row.get("latency_extrapolation") or "").split("; ") if x) or (
            ("outside the fit",) if _truthy(row.get("latency_extrapolated")) else ())
        context = {k[4:]: v for k, v in row.items() if str(k).startswith("ctx_") and v not in (None, "")}
        if source == "predicted":  # a prediction's context is its profile's fit
            context = {k: v for k, v in (("points", _opt(row.get("latency_fit_points"))),
                                         ("loo_mean_error", _opt(row.get("latency_loo_error")))) if v is not None}
        return cls(value, dev, source, lo, hi, context, flags, extrapolation)


def study_latency(settings: Mapping[str, Any]) -> tuple[str, str]:
    """(device, source) of a study's latencies from its settings: a device profile's prediction where the study
    names a device, else local, from the per-block table (``--latency table``/``table-measured``) or measured."""
    device = str(settings.get("device") or LOCAL)
    if device != LOCAL:
        return device, "predicted"
    return LOCAL, "table" if str(settings.get("latency") or "").startswith("table") else "measured"


def describe_column(device: str, source: str, unit: str = "ms") -> str:
    """A column header for latencies of one device and source: ``"latency ms on iphone13, predicted"``."""
    return f"latency {unit} on {device}, {source}"


def budget_verdict(est: LatencyEstimate, limit_ms: float, owner: str = "the") -> dict[str, Any]:
    """Whether ``est`` meets a latency budget: ``{"limit_ms", "meets", "interval_within", "text"}``; ``owner``
    is said before the budget in ``text`` (``"the study's"``: "meets the study's 1.1 ms budget").

    ``meets``: the figure is at most the limit. ``interval_within``: the interval's high end is too (``None``
    without an interval), so that a figure that meets the budget only at its centre says so.
    """
    meets = est.value_ms <= limit_ms
    within = None if est.hi_ms is None else est.hi_ms <= limit_ms
    text = f"{'meets' if meets else 'breaks'} {owner} {limit_ms:g} ms budget"
    if within is not None and meets and not within:
        text += f" (its interval's high end {est.hi_ms:.3f} ms does not)"
    elif within is not None and not meets and est.lo_ms is not None and est.lo_ms <= limit_ms:
        text += f" (its interval's low end {est.lo_ms:.3f} ms meets it)"
    return {"limit_ms": limit_ms, "meets": meets, "interval_within": within, "text": text}


def _opt(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "1.0")
