"""Training recipes: the seed papers' ImageNet-1K recipes, and which one an Arch should get.

A recipe is a YAML mapping with exactly the keys of :class:`Recipe` (an unknown key is an error, so a typo
never silently falls back to a default). ``designspace train`` applies every key; what a paper also used
but ``designspace train`` does not implement (RandAugment, Mixup, CutMix, random erasing) is kept under
``not_applied`` so the recipe still says what the paper did.

The shipped recipes (``designspace/data/recipes.yaml``) and their sources:

* ``efficientmod``: EfficientMod (seed 000) "follows the standard practice in DeiT": DeiT's recipe.
* ``emo``: EMO (seed 002), Sec. 3.1 and Table 6; also given to MBConv-dominated networks, whose block EMO
  trains under this recipe (MobileNetV2's own recipe is RMSProp, which ``designspace train`` does not offer).
* ``iformer``: iFormer (seed 003) follows ConvNeXt's recipe (and removes layer scale).
* ``smt``: SMT (seed 004), Sec. 4.1: batch 1024, AdamW, learning rate 1e-3, weight decay 0.05, Swin's schedule.

Learning rates are for the recipe's ``batch_size``; a run with another batch scales the rate linearly
(``lr * batch / batch_size``), as these papers' code bases do.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from designspace._yaml import Ctx, dump_yaml, load_yaml, read_document
from designspace.arch import Arch
from designspace.exceptions import DocumentError, did_you_mean

__all__ = ["FAMILY_OF_BLOCK", "Recipe", "family_of", "load_recipe", "recipe_for", "recipe_names"]

#: Block type -> the paper family whose recipe trains it. ``msa`` is shared by EfficientMod and SMT and
#: goes with whichever of the two the rest of the network resembles.
FAMILY_OF_BLOCK = {"mbconv": "emo", "irmb": "emo", "efficientmod": "efficientmod", "iformer_conv": "iformer",
                   "shma": "iformer", "sam": "smt", "msa": ""}


@dataclass(frozen=True)
class Recipe:
    """A training recipe (per-image settings; lengths in epochs).

    Attributes:
        name: the recipe's name (its family).
        source: where the values come from.
        epochs: training epochs.
        batch_size: images per optimizer step the ``lr`` is tuned for.
        lr: peak learning rate at ``batch_size`` (AdamW).
        min_lr: the cosine schedule's final learning rate.
        warmup_epochs: linear warm-up from ``warmup_lr`` to ``lr`` (may be fractional).
        warmup_lr: learning rate at step 0.
        weight_decay: AdamW's decoupled weight decay (not applied to norms, biases, layer scales).
        betas: AdamW's betas.
        label_smoothing: cross-entropy label smoothing.
        drop_path: stochastic depth rate (the linear schedule's maximum); ``None`` keeps the Arch's own.
        ema_decay: decay of an exponential moving average of the weights evaluated beside the model, or
            ``None`` for none.
        resolution: training and evaluation input side in pixels; ``None`` keeps the Arch's.
        crop_scale: RandomResizedCrop's area range (fractions of the image).
        hflip: horizontal flip probability.
        not_applied: what the paper also used that ``designspace train`` does not implement (for the record).
    """

    name: str
    source: str
    epochs: int = 300
    batch_size: int = 1024
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 5
    warmup_lr: float = 1e-6
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    label_smoothing: float = 0.1
    drop_path: float | None = None
    ema_decay: float | None = None
    resolution: int | None = None
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: float = 0.5
    not_applied: dict[str, Any] = field(default_factory=dict)

    def scaled_lr(self, batch: int) -> float:
        """The peak learning rate for ``batch`` images per step (linear scaling from ``batch_size``)."""
        return self.lr * batch / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain form (what the YAML holds)."""
        out = dataclasses.asdict(self)
        out["betas"], out["crop_scale"] = list(self.betas), list(self.crop_scale)
        return out

    def to_yaml(self) -> str:
        """The recipe as a YAML document."""
        return dump_yaml(self.to_dict())


_FIELDS = {f.name: f for f in dataclasses.fields(Recipe)}


def _number(ctx: Ctx, key: str, value: Any, kind: type, *, positive: bool = False, low: float = 0.0,
            high: float | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise ctx.error((key,), f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if (positive and value <= 0) or value < low or (high is not None and value > high):
        bound = "> 0" if positive else f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ctx.error((key,), f"must be {bound}, got {value!r}")
    return kind(value)


def _parse(data: Any, ctx: Ctx, name: str) -> Recipe:
    if not isinstance(data, dict):
        raise ctx.error((), "a recipe is a mapping of settings", "see designspace/data/recipes.yaml")
    for key in data:
        if key not in _FIELDS:
            raise ctx.error((str(key),), "unknown recipe key",
                            did_you_mean(str(key), list(_FIELDS)).strip() or f"known keys: {', '.join(_FIELDS)}")
    values: dict[str, Any] = {"name": str(data.get("name", name)), "source": str(data.get("source", ""))}
    ints = {"epochs": True, "batch_size": True}
    floats = {"lr": (True, 0.0, None), "min_lr": (False, 0.0, None), "warmup_epochs": (False, 0.0, None),
              "warmup_lr": (False, 0.0, None), "weight_decay": (False, 0.0, None),
              "label_smoothing": (False, 0.0, 0.99), "hflip": (False, 0.0, 1.0)}
    for key, positive in ints.items():
        if key in data:
            values[key] = _number(ctx, key, data[key], int, positive=positive)
    for key, (positive, low, high) in floats.items():
        if key in data:
            values[key] = _number(ctx, key, data[key], float, positive=positive, low=low, high=high)
    for key, high in (("drop_path", 0.99), ("ema_decay", 0.999999)):
        if data.get(key) is not None:
            values[key] = _number(ctx, key, data[key], float, low=0.0, high=high)
    if data.get("resolution") is not None:
        values["resolution"] = _number(ctx, "resolution", data["resolution"], int, positive=True)
    for key in ("betas", "crop_scale"):
        if key in data:
            pair = data[key]
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1 for v in pair)):
                raise ctx.error((key,), f"must be two numbers in (0, 1], got {pair!r}")
            values[key] = (float(pair[0]), float(pair[1]))
    if "crop_scale" in values and values["crop_scale"][0] > values["crop_scale"][1]:
        raise ctx.error(("crop_scale",), "the low end exceeds the high end", "write [low, high]")
    if "not_applied" in data:
        if not isinstance(data["not_applied"], dict):
            raise ctx.error(("not_applied",), "must be a mapping (setting: the paper's value)")
        values["not_applied"] = dict(data["not_applied"])
    return Recipe(**values)


@functools.cache
def _shipped() -> dict[str, Any]:  # read once per process; callers do not modify it
    text = (files("designspace") / "data" / "recipes.yaml").read_text(encoding="utf-8")
    data, _ = load_yaml(text, "designspace/data/recipes.yaml")
    return dict(data)


def recipe_names() -> list[str]:
    """Names of the shipped recipes (``efficientmod``, ``emo``, ``iformer``, ``smt``)."""
    return sorted(_shipped())


def load_recipe(source: str | Path) -> Recipe:
    """A shipped recipe by name, or a recipe YAML file.

    Raises:
        DocumentError: an unknown name, an unreadable file, an unknown key or a bad value (with file and line).
    """
    shipped = _shipped()
    text = str(source)
    if text in shipped:
        data, lines = load_yaml(dump_yaml(shipped[text]), f"recipe {text}")
        return _parse(data, Ctx(f"recipe {text}", lines), text)
    path = Path(text)
    if not path.exists():
        raise DocumentError(f"{text}: no such recipe file or shipped recipe (fix: "
                            + did_you_mean(text, list(shipped))
                            + f"shipped: {', '.join(sorted(shipped))}, or a YAML file)")
    data, lines = load_yaml(read_document(path, "recipe file"), str(path))
    return _parse(data, Ctx(str(path), lines), path.stem)


def family_of(arch: Arch) -> str:
    """The paper family ``arch`` most resembles: the family holding the largest share of its blocks' MACs.

    MSA blocks count for EfficientMod when the network has EfficientMod blocks (its hybrid variants end
    in ViT blocks), otherwise for SMT.
    """
    from designspace.evaluate.counts.analytic import count

    macs: Counter[str] = Counter()
    for comp in count(arch).components:
        if comp.type in FAMILY_OF_BLOCK:
            macs[comp.type] += comp.macs
    if "msa" in macs:
        macs["efficientmod" if macs["efficientmod"] else "sam"] += macs.pop("msa")
    share: Counter[str] = Counter()
    for block, m in macs.items():
        share[FAMILY_OF_BLOCK[block]] += m
    return share.most_common(1)[0][0] if share else "emo"


def recipe_for(arch: Arch) -> Recipe:
    """The shipped recipe of the family ``arch`` most resembles, with the Arch's own drop-path rate when it
    has one (the zoo's Archs carry the authors' per-model rate) and its resolution."""
    base = load_recipe(family_of(arch))
    return dataclasses.replace(base, drop_path=arch.drop_path_rate or base.drop_path, resolution=arch.resolution)
