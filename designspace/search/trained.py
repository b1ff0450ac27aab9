"""``--objective trained``: candidates trained on the user's data inside a search, with Optuna's pruners.

A trial whose Arch passes every budget (parameters and MACs first, then latency) is trained by
:func:`designspace.train.train` (the family's recipe, or ``--recipe``) for at most ``epochs`` epochs: the
per-trial epoch cap, which is also the length of the learning-rate schedule, so that every candidate sees
the same schedule and a pruned trial is one stopped early on it. After every epoch its validation top-1 is
reported to Optuna (``trial.report(value, epoch)``) and the pruner asked (``trial.should_prune()``, before the
last epoch: a trial that trained all its epochs completes, whatever a rung at the last epoch says); a pruned
trial is PRUNED, and Optuna records its last reported figure as its value. A completed trial's objective
``trained_top1`` is its best validation top-1 in % over the epochs (model or EMA weights: the figure of the
run's ``best.pt``). A trial that breaks a budget is not trained; its ``trained_top1`` is ``-inf`` (empty in
the CSV), as a latency that was not measured is ``+inf``.

Checkpoints live in ``results/<study>/train/<fingerprint>/`` (the sampled Arch's fingerprint; the run folder
of :func:`~designspace.train.train`: ``checkpoint.pt`` after every epoch, ``best.pt``, ``metrics.csv``,
``arch.yaml`` with the dataset's classes and the training resolution). A worker killed mid-trial loses at
most the epoch in progress: its trial is failed and queued again with the same parameters (heartbeats, or at
once for a locked SQLite study), and the retry resumes from the last checkpointed epoch. The same Arch drawn
twice, or by two workers at once, trains once: the run folder is locked (``flock``) while a trial trains in it,
and the later trial resumes from what the earlier one left (a finished run is replayed epoch by epoch).

Pruners: ``hyperband`` (:class:`optuna.pruners.HyperbandPruner`, resources 1 to ``epochs`` epochs, reduction
factor 3), ``sha`` (successive halving from 1 epoch, reduction factor 3), ``median`` (the median of earlier
trials at the same epoch, after 2 completed trials), ``pareto`` (successive halving by Pareto rank over the
validation top-1 and the objectives known before training, reduction factor 3:
:mod:`designspace.search.pareto_pruner`), ``none``. Optuna's own pruners, and ``trial.report`` itself, work on
single-objective studies only: with ``trained_top1`` beside other objectives (latency, counts) the default is
``pareto``, and naming one of Optuna's is refused. ``pareto`` reads each trial's figures from its user attribute
``pareto_rungs`` (the costs known before training, the validation top-1 after each epoch); in a
single-objective study they are also reported to Optuna (``trial.report``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from designspace.exceptions import DesignspaceError
from designspace.safe_files import make_dirs, refuse_links

__all__ = ["MAX_EPOCHS", "PRUNERS", "TRAIN", "TrainedSettings", "TrialTrainer", "check_train_device",
           "check_trained", "default_pruner", "make_pruner", "trained_settings"]

log = logging.getLogger("designspace")

PRUNERS = ("hyperband", "sha", "median", "pareto", "none")
SINGLE_ONLY = ("hyperband", "sha", "median")  # Optuna's: single-objective studies only
TRAIN = "train"  # results/<study>/train/<fingerprint>/
#: the most epochs a trial may train; far above what a search runs, low enough that a typo is refused
MAX_EPOCHS = 10_000
_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]{1,3})?)$")


@dataclass(frozen=True)
class TrainedSettings:
    """How ``--objective trained`` trains each candidate.

    Attributes:
        data: the ImageFolder dataset (``ROOT/<class>/`` or ``ROOT/train|val/<class>/``).
        epochs: the per-trial epoch cap (and the schedule's length); pruned trials stop earlier.
        resolution: training and validation input side in pixels (``None``: the recipe's, else the Arch's).
        pruner: one of :data:`PRUNERS`, or ``""`` for the default of the study's objective count
            (:func:`default_pruner`, settled by :func:`check_trained`).
        train_device: ``cpu``, ``cuda`` or ``cuda:N`` (``cuda`` with several GPUs: one per worker, see
            :func:`check_train_device`).
        recipe: a shipped recipe name or a recipe YAML (``None``: the family the Arch resembles).
        batch_size: images per step (the recipe's learning rate is scaled to it).
        lr: peak learning rate at ``batch_size`` (``None``: the recipe's, scaled).
        val_fraction: held-out share per class when the data has no ``train``/``val`` folders.
        workers: DataLoader worker processes (``None``: on a GPU, :func:`designspace.train.distributed.default_workers`,
            the CPUs' share of each GPU less one; on the CPU none, the trial's training uses the cores).
        split: the scan of ``data`` made when the settings were checked (not part of the study's settings).
    """

    data: Path
    epochs: int = 10
    resolution: int | None = None
    pruner: str = "hyperband"
    train_device: str = "cpu"
    recipe: str | None = None
    batch_size: int = 64
    lr: float | None = None
    val_fraction: float = 0.2
    workers: int | None = None
    split: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """What a study stores and a resumed or joined study must match: everything that changes the figures,
        the dataset by its classes and image counts (workers on other machines hold it under other paths); not
        the device or the loader's workers."""
        split = self.split
        return {"epochs": self.epochs, "resolution": self.resolution, "pruner": self.pruner, "recipe": self.recipe,
                "batch_size": self.batch_size, "lr": self.lr, "val_fraction": self.val_fraction,
                "classes": list(split.classes) if split is not None else None,
                "train_images": len(split.train) if split is not None else None,
                "val_images": len(split.val) if split is not None else None}


def check_train_device(spec: str) -> str:
    """``spec`` if it names a device torch can train on here: ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        DesignspaceError: another spelling, a CUDA device torch does not see (no GPU here, or N too large).
    """
    text = str(spec).strip()
    if not _DEVICE.match(text):
        raise DesignspaceError(f"--train-device {str(spec)[:40]!r} is not a training device (fix: cpu, cuda or cuda:N)")
    if text.startswith("cuda"):
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(text.partition(":")[2] or 0)
        if index >= n:
            raise DesignspaceError(f"--train-device {text}, but torch sees {n} GPU{'s' if n != 1 else ''} here "
                                   "(fix: --train-device cpu" + (f", or cuda:0 to cuda:{n - 1})" if n else ")"))
    return text


def trained_settings(data: str | Path | None, *, epochs: int | None = None, resolution: int | None = None,
                     pruner: str | None = None, train_device: str | None = None, recipe: str | None = None,
                     batch_size: int | None = None, lr: float | None = None, val_fraction: float = 0.2,
                     workers: int | None = None, seed: int = 0) -> TrainedSettings:
    """Checked :class:`TrainedSettings`; the dataset is scanned here, before any trial starts.

    Args:
        data: the dataset folder (required).
        epochs: the per-trial epoch cap (default 10).
        resolution: input side in pixels.
        pruner: ``hyperband``, ``sha``, ``median``, ``pareto`` or ``none`` (default: :func:`default_pruner`).
        train_device: ``cpu`` (default), ``cuda`` or ``cuda:N``.
        recipe: a shipped recipe name or a recipe file.
        batch_size: images per step (default 64).
        lr: peak learning rate.
        val_fraction: held-out share per class.
        workers: DataLoader workers.
        seed: the seed of the train/validation split (the search's seed).

    Raises:
        DesignspaceError: a missing, empty, one-class dataset or one with unreadable images (DataError); a bad
            pruner, epoch count, resolution, batch, learning rate, recipe or device. One line each, with the fix.
    """
    if data is None:
        raise DesignspaceError("--objective trained needs a dataset (fix: --data DIR, one sub-folder of images per "
                               "class)")
    name = (pruner or "").strip().lower()
    if name and name not in PRUNERS:
        raise DesignspaceError(f"unknown pruner {str(pruner)[:40]!r} (fix: --pruner {', '.join(PRUNERS)})")
    n_epochs = 10 if epochs is None else epochs
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or not 1 <= n_epochs <= MAX_EPOCHS:
        raise DesignspaceError(f"--epochs must be a whole number from 1 to {MAX_EPOCHS:,}, got {epochs!r} "
                               "(fix: --epochs 10)")
    if resolution is not None and not 8 <= resolution <= 4096:
        raise DesignspaceError(f"--resolution must be from 8 to 4096 pixels, got {resolution} (fix: --resolution 64)")
    batch = 64 if batch_size is None else batch_size
    if batch < 1:
        raise DesignspaceError(f"--train-batch must be at least 1, got {batch} (fix: --train-batch 64)")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise DesignspaceError(f"--lr must be a learning rate > 0, got {lr} (fix: --lr 1e-3)")
    if recipe is not None:
        from designspace.recipes import load_recipe

        load_recipe(recipe)  # an unknown name or a bad file: DocumentError, exit 2
    device = check_train_device(train_device or "cpu")
    split = check_data(data, val_fraction, seed)
    return TrainedSettings(Path(data).resolve(), n_epochs, resolution, name, device, recipe, batch, lr,
                           val_fraction, workers, split)


def check_data(data: str | Path, val_fraction: float = 0.2, seed: int = 0) -> Any:
    """The dataset's :class:`~designspace.train.Split` (the scanner of :mod:`designspace.train.data`), refusing
    unreadable images: a search trains every candidate on the same images, so they are fixed first (``designspace
    train`` skips them with a warning instead).

    Raises:
        DataError: missing, empty, one class, a class without images, unreadable images.
    """
    from designspace.train.data import DataError, scan

    logger = logging.getLogger("designspace")
    level = logger.level
    logger.setLevel(logging.ERROR)  # one line for the user: the error below, not a warning per image
    try:
        split = scan(data, val_fraction, seed)
    finally:
        logger.setLevel(level)
    if split.skipped:
        path, reason = split.skipped[0]
        more = f" and {len(split.skipped) - 1} more" if len(split.skipped) > 1 else ""
        raise DataError(f"{path}: not a readable image ({reason[:120]}){more} (fix: remove or replace the "
                        "unreadable images in --data; every candidate trains on the same images)")
    return split


def default_pruner(n_objectives: int) -> str:
    """``hyperband`` for a single-objective study, ``pareto`` for several objectives."""
    return "hyperband" if n_objectives == 1 else "pareto"


def make_pruner(name: str, epochs: int, n_objectives: int) -> Any:
    """The Optuna pruner ``name`` (``""``: :func:`default_pruner`) for trials of at most ``epochs`` epochs (see the
    module docstring); a :class:`optuna.pruners.NopPruner` for ``none``.

    Raises:
        DesignspaceError: an unknown name; one of Optuna's single-objective pruners for several objectives.
    """
    import optuna

    name = name or default_pruner(n_objectives)
    if name in SINGLE_ONLY and n_objectives > 1:
        raise DesignspaceError(f"--pruner {name} works on single-objective studies only, and this one has "
                               f"{n_objectives} objectives (fix: --pruner pareto, successive halving by Pareto rank, "
                               "or --pruner none)")
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "pareto":
        from designspace.search.pareto_pruner import ParetoHalvingPruner

        return ParetoHalvingPruner(max_resource=epochs, min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    raise DesignspaceError(f"unknown pruner {name!r} (fix: one of {', '.join(PRUNERS)})")


class _Pruned(Exception):
    """Raised from the per-epoch callback to stop the training loop (its checkpoint is already written)."""


@contextlib.contextmanager
def _locked(run: Path) -> Iterator[None]:
    """One trainer at a time in ``run`` (an ``flock`` the kernel releases when the process dies, kill -9 too)."""
    make_dirs(run, run.parent.parent.parent)  # results/<study>/train/<fp>: never through a planted link
    refuse_links(run / ".lock", run)
    with open(run / ".lock", "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another worker trains the same Arch: wait, then resume from it
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _claim_gpu(spec: str) -> tuple[str, IO[str] | None]:
    """``cuda`` with several GPUs: the first GPU no other designspace worker on this machine holds (an ``flock``
    in the temporary folder), so that workers started side by side train on one GPU each; else ``spec``."""
    if spec != "cuda":
        return spec, None
    import torch

    n = torch.cuda.device_count()
    for i in range(n if n > 1 else 0):
        handle = open(Path(tempfile.gettempdir()) / f"designspace-cuda-{i}.lock", "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return f"cuda:{i}", handle
    return "cuda:0" if n else spec, None  # one GPU, or every GPU taken: share the first


class TrialTrainer:
    """Trains one trial's Arch (see the module docstring); called by the search's trial evaluator.

    Args:
        settings: how to train.
        folder: ``results/<study>/``.
        seed: the training seed (the search's: every candidate gets the same split, order and augmentation).
        n_objectives: the study's objective count (Optuna's own pruners need exactly one).
        progress: show a bar of the trial's epochs.
        failed: the exception a failed training raises (the search's ``Failed``: the trial is FAIL and counts).
        objectives: the study's objectives (:class:`~designspace.search.objectives.Objective`): those whose value
            the trial's metrics hold before training (latency, counts) are the costs ``pareto`` ranks by.
    """

    def __init__(self, settings: TrainedSettings, folder: Path, *, seed: int, n_objectives: int,
                 progress: bool, failed: type[Exception] = DesignspaceError, objectives: Sequence[Any] = ()) -> None:
        self.settings = settings
        self.failed = failed
        self.folder = folder
        self.seed = seed
        self.name = settings.pruner or default_pruner(n_objectives)
        self.pruner = make_pruner(self.name, settings.epochs, n_objectives)
        self.prune = self.name != "none"
        self.report = n_objectives == 1  # Trial.report exists for single-objective studies only
        # known before a candidate trains: counts and latency (measured first, for the budgets), and estimates or
        # user objectives listed before the trained one (evaluated in the listed order)
        first = next((i for i, o in enumerate(objectives) if o.kind == "trained"), len(objectives))
        self.objectives = [o for i, o in enumerate(objectives)
                           if o.kind in ("count", "latency") or (o.kind != "trained" and i < first)]
        self.progress = progress
        self.device, self._gpu_lock = _claim_gpu(settings.train_device)

    def __call__(self, trial: Any, arch: Any, ds: dict[str, Any], feasible: bool) -> float:
        """The trial's ``trained_top1`` (%); records the learning curve in ``ds["metrics"]``.

        Raises:
            optuna.TrialPruned: the pruner stopped it (its last figure is its value).
            failed: the training failed (an Arch that cannot run at the resolution, a diverging loss).
        """
        import optuna

        from designspace.search.pareto_pruner import ATTR
        from designspace.train import CheckpointError, TrainConfig, train

        metrics = ds["metrics"]
        if not feasible:  # budgets first: an infeasible candidate is never trained
            metrics["trained_top1"] = None
            return -math.inf
        trial.study.pruner = self.pruner  # Study.pruner is public; the runner creates studies without one
        s = self.settings
        # the objectives known before training, minimized: what the pareto pruner ranks a rung's trials by
        # (None where a value is missing: the pruner reads it as the worst)
        costs = [_minimized(o, metrics.get(o.name)) for o in self.objectives]
        run = self.folder / TRAIN / arch.fingerprint
        curve: list[float] = []
        bar = self._bar(trial.number)

        def on_epoch(row: dict[str, float]) -> None:
            ema = row.get("val_top1_ema", math.nan)
            value = max(row["val_top1"], ema) if math.isfinite(ema) else row["val_top1"]
            curve.append(round(value, 4))
            metrics.update(val_top1_curve=" ".join(f"{v:g}" for v in curve), epochs_trained=len(curve),
                           val_top1_last=value)
            trial.set_user_attr("ds", ds)  # a killed worker's trial still says how far it got
            if bar is not None:
                bar.set_postfix_str(f"val top-1 {value:.1f}%", refresh=False)  # drawn by the update
                bar.update(1)
            if self.name == "pareto":
                trial.set_user_attr(ATTR, {"costs": costs, "top1": curve})
            if self.report:
                trial.report(value, step=int(row["epoch"]))
            # after the last epoch the training is done: stopping it would only discard its figure
            if self.prune and int(row["epoch"]) < s.epochs and self._should_prune(trial):
                raise _Pruned(int(row["epoch"]), value)

        cfg = TrainConfig(arch=arch, data=s.data, out=run, recipe=s.recipe, epochs=s.epochs, batch_size=s.batch_size,
                          lr=s.lr, resolution=s.resolution, val_fraction=s.val_fraction,
                          workers=s.workers if s.workers is not None or self.device.startswith("cuda") else 0,
                          device=self.device, seed=self.seed, progress=False, split=s.split)
        try:
            with _locked(run):
                report = train(cfg, on_epoch=on_epoch)
        except _Pruned as stop:
            epoch, value = stop.args
            ds["reason"] = f"pruned by {self.name} after epoch {epoch} of {s.epochs}: val top-1 {value:.2f}%"
            metrics["trained_top1"] = None
            trial.set_user_attr("ds", ds)
            raise optuna.TrialPruned(ds["reason"]) from None
        except CheckpointError:
            raise  # a run folder that is not plain data: the study is suspect, the search stops (exit 2)
        except DesignspaceError as err:
            ds.update(reason=f"training failed: {err}", counted=True)
            trial.set_user_attr("ds", ds)
            raise self.failed(ds["reason"]) from None
        except (MemoryError, RuntimeError) as err:  # torch's out-of-memory errors are RuntimeErrors
            if not isinstance(err, MemoryError) and "out of memory" not in str(err):
                raise  # anything else is a bug: the search's crash report
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()  # for the next trial
            ds.update(reason=f"training ran out of memory on {self.device} at batch {s.batch_size} (fix: a smaller "
                             "--train-batch or --resolution, or a tighter --budget)", counted=True)
            trial.set_user_attr("ds", ds)
            raise self.failed(ds["reason"]) from None
        finally:
            if bar is not None:
                bar.close()
        metrics.update(trained_top1=report.best_top1, chance_top1=100.0 / len(report.classes))
        return float(report.best_top1)

    def _should_prune(self, trial: Any) -> bool:
        if self.name == "pareto":  # its own figures: Trial.should_prune() refuses multi-objective studies
            return bool(self.pruner.prune(trial.study, trial))
        return bool(trial.should_prune())

    def _bar(self, number: int) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.settings.epochs, desc=f"trial {number} epochs", unit="epoch", position=1, leave=False,
                    dynamic_ncols=True)


def _minimized(objective: Any, value: Any) -> float | None:
    """``value`` as a minimized cost (negated for a maximized objective); ``None`` when not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if objective.direction == "minimize" else -float(value)


def check_trained(objectives: Sequence[Any], trained: TrainedSettings | None) -> TrainedSettings | None:
    """Refuses a ``trained`` objective without training settings (``--data``), training settings without a
    ``trained`` objective (``--data`` given to a search that would not use it), and one of Optuna's
    single-objective pruners for several objectives; returns ``trained`` with its pruner settled
    (:func:`default_pruner` when none was named).

    Raises:
        DesignspaceError: either mismatch, or the pruner, with the fix.
    """
    wants = any(o.kind == "trained" for o in objectives)
    if wants and trained is None:
        raise DesignspaceError("--objective trained needs a dataset (fix: --data DIR, one sub-folder of images per "
                               "class)")
    if trained is not None and not wants:
        raise DesignspaceError("--data, --epochs and --pruner train candidates only for --objective trained (fix: add "
                               "--objective trained, beside latency or counts if you like)")
    if trained is None:
        return None
    import dataclasses

    name = trained.pruner or default_pruner(len(objectives))
    make_pruner(name, trained.epochs, len(objectives))  # refuses Optuna's pruners for several objectives
    return dataclasses.replace(trained, pruner=name)
