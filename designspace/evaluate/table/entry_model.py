"""Predicted latency-table entries: a missing entry estimated, per component type, by the device cost model
(:mod:`designspace.evaluate.devices.costmodel`) fitted on the measured entries of its type, where the type has
:data:`MIN_POINTS` of its current code, the model's cross-validated error is at most :data:`MAX_ERROR` and the
entry's features lie inside the fitted ones' range; anything else is measured. A prediction is never stored.
Why and the evidence: docs/latency.md, "The per-block latency table" (**Predicted entries**)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from designspace.evaluate.cache import Cache
from designspace.evaluate.devices.costmodel import CostModel, FitError, fit_cost_model
from designspace.evaluate.devices.features import FEATURES
from designspace.evaluate.table.entries import KIND, entry_features, entry_of, placement_of, stored_features
from designspace.evaluate.table.term import table_context_key

if TYPE_CHECKING:
    from designspace.evaluate.measure.latency import Context
    from designspace.plan import Placement

__all__ = ["COLUMNS", "MAX_ERROR", "MIN_POINTS", "EntryModel", "EntryPredictor", "entry_features"]

log = logging.getLogger(__name__)
#: an entry's features, of the component alone: :data:`designspace.evaluate.devices.features.FEATURES`
COLUMNS = FEATURES
#: measured entries of a type needed before its entries are predicted
MIN_POINTS = 12
#: the largest cross-validated mean relative error at which a type's model is used
MAX_ERROR = 0.10
#: refit a type's model once its measured entries have grown by this fraction since the last fit
REFIT_GROWTH = 0.25


@dataclass(frozen=True)
class EntryModel:
    """One component ``type``'s entry model: the fitted cost ``model`` (milliseconds per feature unit), the number
    of measured entries it was fitted on (``points``) and its cross-validated relative errors ``|pred - y| / y``,
    mean and largest (``cv_mean``, ``cv_max``)."""

    type: str
    model: CostModel
    points: int
    cv_mean: float
    cv_max: float

    @property
    def usable(self) -> bool:
        """Whether it predicts: at least :data:`MIN_POINTS` points and ``cv_mean <= MAX_ERROR``."""
        return self.points >= MIN_POINTS and self.cv_mean <= MAX_ERROR


class EntryPredictor:
    """Predicts missing table entries in ``context`` from the entries measured there (in ``cache``'s table).

    Models are fitted per component type on first need and refitted once the type's measured entries have grown
    by :data:`REFIT_GROWTH`; a measured entry's features are stored in its row on first use.
    """

    def __init__(self, context: Context, cache: Cache) -> None:
        self.context, self.cache = context, cache
        self._models: dict[str, EntryModel | None] = {}
        self._fitted_on: dict[str, int] = {}
        self._rows: dict[str, list[tuple[str, dict[str, Any]]]] | None = None
        self._seen = -1
        self._guesses: dict[str, float | None] = {}  # entry key -> prediction, by the models as they are now

    def _by_type(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """The context's measured entries of current code, by type (reread when entries were added)."""
        from designspace.evaluate.identity import component_identity

        n = self.cache.count(KIND, table_context_key(self.context))
        if self._rows is not None and n == self._seen:
            return self._rows
        by: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for key, row in self.cache.rows(KIND, table_context_key(self.context)):
            entry, ms = row.get("entry"), row.get("ms")
            if not isinstance(entry, dict) or not (isinstance(ms, (int, float)) and math.isfinite(ms) and ms > 0):
                continue
            t = str(entry.get("type"))
            try:
                if key.endswith("@" + component_identity(t)):
                    by.setdefault(t, []).append((key, row))
            except Exception:  # a type no longer registered
                continue
        self._rows, self._seen = by, n
        return by

    def _features(self, key: str, row: dict[str, Any]) -> list[float] | None:
        """A measured entry's features: stored in its row, else computed from the entry and stored."""
        stored = stored_features(row)
        if stored is not None:
            return stored
        try:
            feats = entry_features(placement_of(row["entry"]))
        except Exception as err:  # an entry whose component cannot be rebuilt from its row: not a fitting point
            log.debug("latency table: no features for %s (%s)", key, err)
            return None
        if feats is not None:
            self.cache.put(key, KIND, table_context_key(self.context), {**row, "features": feats})
        return feats

    def model(self, type_name: str) -> EntryModel | None:
        """The type's model (fitted or refitted as needed), or ``None`` where there are too few entries."""
        rows = self._by_type().get(type_name, [])
        last = self._fitted_on.get(type_name)
        # fitted on first need, again once the entries grew by a quarter, and as soon as there are enough
        first_possible = last is not None and last < MIN_POINTS <= len(rows)
        if last is not None and len(rows) < last * (1 + REFIT_GROWTH) and not first_possible:
            return self._models[type_name]
        self._fitted_on[type_name] = max(len(rows), 1)
        model = None
        if len(rows) >= MIN_POINTS:
            pts = [(f, float(row["ms"])) for key, row in rows if (f := self._features(key, row)) is not None]
            x, y = [f for f, _ in pts], [ms for _, ms in pts]
            try:
                if len(y) >= MIN_POINTS:  # leave-one-out costs a fit per point: thousands of entries need folds
                    fitted = fit_cost_model(x, y, COLUMNS, folds=None if len(y) < 40 else 10)
                    errors = fitted.loo_errors
                    model = EntryModel(type_name, fitted, len(y), float(sum(errors) / len(errors)), float(max(errors)))
            except FitError as err:
                log.debug("latency table: no entry model for %s (%s)", type_name, err)
        if model is not None:
            log.log(logging.INFO if last is None or first_possible else logging.DEBUG,  # refits: quietly
                    "latency table: %s entries predicted from %d measured ones (cross-validated error %.1f%% "
                    "mean, %.1f%% max)%s", type_name, model.points, 100 * model.cv_mean, 100 * model.cv_max,
                    "" if model.usable else "; not used: above the limit")
        self._models[type_name] = model
        self._guesses = {k: v for k, v in self._guesses.items() if not k.startswith(type_name + ":")}
        return model

    def predict(self, p: Placement) -> float | None:
        """Milliseconds predicted for ``p``'s entry, or ``None`` where it must be measured (no usable model for
        its type, or features outside what the model was fitted on)."""
        model = self.model(p.layer.type)
        if model is None or not model.usable:
            return None
        key = entry_of(p).key  # "type:hash@code": a search meets one entry in many trials
        if key in self._guesses:
            return self._guesses[key]
        guess = None
        raw = entry_features(p)  # None: a component that cannot trace on the meta device, measured instead
        feats = dict(zip(COLUMNS, raw, strict=True)) if raw is not None else None
        if feats is not None and not model.model.outside(feats):
            ms = model.model.predict(feats)
            guess = ms if ms > 0 and math.isfinite(ms) else None
        self._guesses[key] = guess
        return guess
