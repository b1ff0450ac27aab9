"""What ``--objective trained`` leaves in ``results/<study>/``, read back for the command line, the app and export.

Each trained trial's row in ``trials.csv`` carries ``trained_top1`` (best validation top-1 in %, completed trials),
``val_top1_curve`` (the validation top-1 after each epoch, space-separated), ``epochs_trained``, ``val_top1_last``
and ``chance_top1``; its run folder is ``results/<study>/train/<fingerprint>/`` (:mod:`designspace.search.trained`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from designspace.search.trained import TRAIN

__all__ = ["TrainedRun", "curve_of", "learning_curves", "trained_run", "trained_run_of", "trained_summary"]

_FINGERPRINT = re.compile(r"^[0-9a-f]{8,64}$")


def curve_of(value: Any) -> list[float]:
    """The validation top-1 per epoch (%) from a ``val_top1_curve`` cell (``"25 41.7"``; a lone number; empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    out = []
    for part in str(value).split():
        try:
            out.append(float(part))
        except ValueError:
            return []  # not a curve: a hand-edited or foreign file
    return out


def learning_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (trial, epoch) of the trained trials in ``rows`` (``trials.csv`` rows or app records):
    ``number``, ``state``, ``epoch`` (from 1), ``val_top1`` (%), in trial then epoch order."""
    out = []
    for r in rows:
        for epoch, v in enumerate(curve_of(r.get("val_top1_curve")), start=1):
            out.append({"number": int(float(r["number"])), "state": str(r.get("state", "")), "epoch": epoch,
                        "val_top1": v})
    return sorted(out, key=lambda rec: (rec["number"], rec["epoch"]))


@dataclass(frozen=True)
class TrainedRun:
    """A trial's training run folder, as ``export`` copies it.

    Attributes:
        folder: ``results/<study>/train/<fingerprint>/``.
        files: export file name -> the run's file (``best.pt``, ``trained_arch.yaml``, ``trained_metrics.csv``).
        metrics: what ``metrics.json`` records under ``trained``.
    """

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def readme(self) -> str:
        """The README paragraph on the trained weights."""
        m = self.metrics
        return (f"\n## Trained weights\n\n`best.pt` holds the search's trained weights of this network "
                f"({m['val_top1']:.2f}% validation top-1 after epoch {m['epoch']}, {m['classes']} classes at "
                f"{m['resolution']}x{m['resolution']}; chance {100 / max(m['classes'], 1):.1f}%). They fit "
                "`trained_arch.yaml` (this Arch with the dataset's classes and the training resolution):\n\n"
                "```bash\ndesignspace export trained_arch.yaml --weights best.pt --out trained/   # ONNX of the "
                "trained network\n```\n\n`trained_metrics.csv` is the learning curve (one row per epoch).\n")


def trained_run(study_folder: Path, row: dict[str, Any] | None) -> TrainedRun | None:
    """The training run of a study trial (its trials-table ``row``) when it holds a ``best.pt``, else ``None``.

    Raises:
        CheckpointError: a ``best.pt`` that is not a plain weights file (it would run code when loaded).
    """
    fp = str((row or {}).get("fingerprint") or "")
    if not _FINGERPRINT.match(fp):  # a hex digest, never a path: nothing outside the study is read
        return None
    run = Path(study_folder) / TRAIN / fp
    if not (run / "best.pt").is_file() or not (run / "arch.yaml").is_file():
        return None
    from designspace.train.checkpoint import load_tensors, model_state, read_state

    fix = f"delete {run} (the trial's run folder) and resume the search to train it again"
    # weights only, checked before export copies it: a study folder from elsewhere must not run code here
    tensors = load_tensors(run / "best.pt", fix=fix)
    model_state(tensors, run / "best.pt", fix=fix)
    best = read_state(run / "best.json") if (run / "best.json").is_file() else tensors  # older runs: inside
    from designspace.network import load_arch

    trained = load_arch(run / "arch.yaml")
    files = {"best.pt": run / "best.pt", "trained_arch.yaml": run / "arch.yaml"}
    if (run / "metrics.csv").is_file():
        files["trained_metrics.csv"] = run / "metrics.csv"
    metrics = {"checkpoint": "best.pt", "arch": "trained_arch.yaml",
               "val_top1": float(best.get("val_top1") or math.nan), "epoch": int(best.get("epoch") or 0),
               "classes": trained.num_classes, "class_names": best.get("classes"), "resolution": trained.resolution,
               "run": str(run)}
    return TrainedRun(run, files, metrics)


def trained_run_of(source: str | Path, row: dict[str, Any] | None) -> TrainedRun | None:
    """:func:`trained_run` of ``export``'s source (``STUDY`` or ``STUDY:TRIAL``) and its row; ``None`` for an Arch."""
    if row is None:
        return None
    from designspace.results import read_results

    text = str(source)
    return trained_run(read_results(text.rpartition(":")[0] if ":" in text else text).folder, row)


def trained_summary(folder: Path) -> str | None:
    """One line on the training of the study in ``folder`` (``results/<study>/``, read from its results files), or
    ``None`` when the study has no ``trained`` objective: how many trained, how many the pruner stopped, the best."""
    from designspace.results import read_results

    res = read_results(folder)
    trained = res.settings.get("trained")
    if not trained:
        return None
    rows = res.rows
    ran = [r for r in rows if r.get("epochs_trained") not in (None, "")]
    pruned = [r for r in ran if r.get("state") == "PRUNED"]
    done = [r for r in ran if r.get("state") == "COMPLETE" and r.get("trained_top1") not in (None, "")]
    # epochs trained, once per run folder: a retried or repeated Arch resumes (replays) its run's epochs
    runs: dict[str, int] = {}
    for r in ran:
        fp = str(r.get("fingerprint"))
        runs[fp] = max(runs.get(fp, 0), int(float(r["epochs_trained"])))
    line = (f"  trained {len(pruned) + len(done)} trials, {sum(runs.values())} epochs in all (cap {trained['epochs']} "
            "a trial); pruned by "
            f"{trained['pruner']} {len(pruned)}; completed {len(done)}")
    if done:
        best = max(done, key=lambda r: float(r["trained_top1"]))
        chance = 100.0 / len(trained["classes"]) if trained.get("classes") else math.nan
        line += (f"; best trained_top1 {float(best['trained_top1']):.2f}% (trial {best['number']}, chance "
                 f"{chance:.1f}%; checkpoint {res.folder / TRAIN / str(best.get('fingerprint'))}/best.pt)")
    return line


