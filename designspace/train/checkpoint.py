"""Checkpoints that are data, never code: tensors in ``.pt`` files, everything else in JSON beside them.

A ``.pt`` file is a pickle, and a pickle can name any Python callable to run when it is loaded. Every
checkpoint designspace reads (``designspace train``'s resume, ``export --weights``, a trained search's
``best.pt`` and resume) is therefore loaded with ``torch.load(..., weights_only=True)``: PyTorch's restricted
unpickler, which rebuilds tensors, dicts, lists, tuples, strings and numbers and refuses every other global
before calling it. A file that asks for anything else is refused with :class:`CheckpointError` (one line naming
the file and the fix, exit 2), and its payload never runs.

What designspace writes:

* ``checkpoint.pt``: ``{"model": state_dict, "optimizer": {param index: {"step", "exp_avg", "exp_avg_sq"}},
  "ema": state_dict (when the recipe has an EMA), "rng": the CPU generator's state, "cuda_rng": the GPU's (when
  training on one), "epoch"}``: tensors only;
* ``checkpoint.json`` beside it: the epoch, the run's epoch count (the schedule's length), the best top-1,
  the metrics history, the Arch fingerprint, the classes, the recipe, the batch and process count, the
  optimizer's hyper-parameters (``param_groups``);
* ``best.pt``: ``{"model": state_dict}``; ``best.json``: its Arch (YAML), classes, validation top-1 and epoch.

Runs written before this layout (one ``.pt`` with the state inside, as plain strings and numbers) still load:
``weights_only`` reads their plain values, and they resume.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from designspace.exceptions import DesignspaceError
from designspace.safe_files import atomic_write

if TYPE_CHECKING:
    import torch
    from torch import nn

    from designspace.arch import Arch
    from designspace.recipes import Recipe
    from designspace.train.data import Split
    from designspace.train.distributed import Dist

__all__ = ["CHECKPOINT", "STATE", "CheckpointError", "load_tensors", "model_state", "read_state", "resume",
           "save_tensors", "write_state"]

CHECKPOINT, STATE = "checkpoint.pt", "checkpoint.json"
_FIX = "delete it to start over, or another --out"
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class CheckpointError(DesignspaceError):
    """A checkpoint that is not a plain weights file, or one that cannot be read."""


def _atomic(path: Path, data: bytes) -> None:
    atomic_write(path, data)  # a kill mid-write leaves the previous file whole; a planted link is replaced


def save_tensors(obj: Mapping[str, Any], path: Path) -> None:
    """Writes ``obj`` (nested dicts of tensors) with ``torch.save``, atomically (written beside, then renamed)."""
    import torch

    buf = io.BytesIO()
    torch.save(dict(obj), buf)
    _atomic(path, buf.getvalue())


def write_state(data: Mapping[str, Any], path: Path) -> None:
    """Writes the JSON half of a checkpoint atomically (NaN written as ``null``: the project's JSON loader refuses
    non-finite numbers)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    _atomic(path, (json.dumps(clean(dict(data)), indent=1) + "\n").encode("utf-8"))


def read_state(path: Path) -> dict[str, Any]:
    """The JSON half of a checkpoint, through the project's safe JSON loader.

    Raises:
        CheckpointError: unreadable, not JSON, or not a mapping.
    """
    from designspace._yaml import load_json
    from designspace.exceptions import DocumentError

    try:
        data = load_json(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, DocumentError) as err:
        raise CheckpointError(f"{path}: cannot read the run's state ({str(err)[:200]}) (fix: delete the run folder "
                              "to start over, or another --out)") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the run's state is not a JSON mapping (fix: delete the run folder to start "
                              "over, or another --out)")
    return data


def load_tensors(path: str | Path, *, fix: str) -> dict[str, Any]:
    """The mapping a checkpoint holds, loaded with ``torch.load(weights_only=True)`` on the CPU.

    Args:
        path: the ``.pt`` file.
        fix: the remedy named in the error (e.g. ``"delete it to start over, or another --out"``).

    Raises:
        CheckpointError: the file asks to run code (a global outside tensors and plain values), cannot be read,
            or does not hold a mapping; one line naming ``path``.
    """
    import pickle

    import torch

    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        what = f" (it names {found.group(1)})" if found else ""
        raise CheckpointError(f"{p}: not a plain weights file: loading it would run code{what}, which designspace "
                              f"never does (fix: {fix}; a file you trust can be converted with torch.save("
                              "model.state_dict()))") from None
    except Exception as err:  # torch raises many types for a file it cannot read
        raise CheckpointError(f"{p}: cannot read the checkpoint ({type(err).__name__}: {str(err)[:160]}) "
                              f"(fix: {fix})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: holds a {type(state).__name__}, not a mapping of weights (fix: {fix})")
    return state


def model_state(state: Mapping[str, Any], path: str | Path, *, fix: str, key: str = "model") -> dict[str, Any]:
    """The network weights in a loaded checkpoint: ``state[key]`` when present (designspace's files), else the
    mapping itself (a plain ``state_dict``); every value a tensor.

    Raises:
        CheckpointError: a value that is not a tensor.
    """
    import torch

    weights = state.get(key, state)
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: its {key!r} entry is a {type(weights).__name__}, not weights (fix: {fix})")
    for name, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {str(name)[:60]!r} is a {type(value).__name__}, not a tensor "
                                  f"(fix: {fix})")
    return weights


def _best_of(history: list[dict[str, Any]]) -> float:
    return max((max(float(r["val_top1"]), float(r.get("val_top1_ema") or 0.0)) for r in history), default=0.0)


def resume(out: Path, net: nn.Module, optimizer: torch.optim.Optimizer, ema: nn.Module | None, scaler: Any,
            arch: Arch, split: Split, epochs: int, say: Callable[[str], None], *, lone: bool, steps: int,
            warmup: int, peak: float, recipe: Recipe, dist: Dist) -> tuple[int, float, list[dict[str, float]]]:
    """Loads the run folder ``out``'s checkpoint into the run's network, optimizer, EMA and scaler (weights only);
    says what it resumes, and explains a changed epoch count (the schedule is stretched from the epoch reached).

    Returns:
        (the epoch it resumes after, the best validation top-1 so far in %, the metrics rows of the epochs done).

    Raises:
        CheckpointError: not a plain weights file, damaged, or its JSON inconsistent with it.
        DesignspaceError: a checkpoint of another Arch, resolution or class set.
    """
    import torch

    from designspace.train.steps import lr_at

    state_path = out / CHECKPOINT
    state = load_tensors(state_path, fix=_FIX)
    # the JSON beside it; a run written before it existed kept these plain values inside the .pt
    meta = read_state(out / STATE) if (out / STATE).exists() else dict(state)
    if meta.get("fingerprint") != arch.fingerprint or tuple(meta.get("classes") or ()) != split.classes:
        raise DesignspaceError(f"{state_path}: a checkpoint of another run (another Arch, resolution or classes) "
                               f"(fix: another --out, or {_FIX.split(',')[0]})")
    try:
        done = int(state["epoch"])
        # a state written ahead of its tensors is trimmed; NaN was written as null
        history = [{k: math.nan if v is None else v for k, v in r.items()} for r in meta["history"]][:done]
        net.load_state_dict(model_state(state, state_path, fix=_FIX))
        opt = state["optimizer"]
        optimizer.load_state_dict(opt if "param_groups" in opt else {"state": opt,
                                                                     "param_groups": meta["param_groups"]})
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(model_state(state, state_path, fix=_FIX, key="ema"))
        if meta.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(meta["scaler"])
        if dist.world == 1:
            torch.set_rng_state(state["rng"])
            if dist.device.type == "cuda" and isinstance(state.get("cuda_rng"), torch.Tensor):
                torch.cuda.set_rng_state(state["cuda_rng"], dist.device)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{state_path}: an incomplete or damaged checkpoint ({type(err).__name__}: "
                                   f"{str(err)[:120]}) (fix: {_FIX})") from None
    if len(history) != done:
        raise CheckpointError(f"{state_path}: holds epoch {done}, but {out / STATE} records "
                                   f"{len(history)} (fix: {_FIX})")
    best = _best_of(history) if history else float(meta.get("best_top1") or 0.0)
    was = meta.get("processes") or 1
    note = f", {was} process{'es' if was != 1 else ''} before, {dist.world} now" if was != dist.world else ""
    say(f"resuming {out} after epoch {done} of {epochs} (best val top-1 {best:.2f}%{note})")
    before = meta.get("epochs")
    if isinstance(before, int) and before != epochs and done < epochs:
        lr_old = lr_at(done * steps, steps * before, warmup, peak, recipe.warmup_lr, recipe.min_lr)
        lr_new = lr_at(done * steps, steps * epochs, warmup, peak, recipe.warmup_lr, recipe.min_lr)
        say(f"note: this run was started with --epochs {before}, now {epochs}: the cosine schedule is stretched to "
            f"{epochs} epochs from here (learning rate {lr_new:.3g} at epoch {done + 1} instead of {lr_old:.3g}); "
            f"rerun with --epochs {before} to keep the original schedule")
    return done, best, history
