"""``export``, ``train``: a winner handed to deployment and to training."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _export(args: argparse.Namespace) -> int:
    from designspace.export import export

    report = export(args.source, args.out, latency=not args.no_latency, onnx=not args.no_onnx, force=args.force,
                    weights=args.weights, coreml=args.coreml)
    m = report.metrics
    if args.json:
        print(json.dumps({"out": str(report.out), "files": [str(f) for f in report.files], **m}, indent=2,
                         default=str))
        return 0
    c = m["counts"]
    lines = [f"exported {report.arch.name or report.arch.fingerprint} ({m['fingerprint']}) to {report.out}/",
             f"  rebuilt and re-counted: {c['params']:,} params ({c['params_m']:.3f} M), {c['macs_g']:.4f} GMACs"
             + (" = the study's record" if m.get("recorded") else "")]
    if m.get("onnx"):
        lines.append(f"  model.onnx checked with ONNX Runtime: max abs difference {m['onnx']['max_abs_diff']:.2e}")
    dev = m.get("latency_device")
    if dev and not dev.get("error"):
        verdict = f": {dev['budget']['text']}" if dev.get("budget") else ""
        lines.append(f"  latency on {dev['device']}, predicted: {dev['value_ms']:.3f} ms (interval "
                     f"{dev['lo_ms']:.3f}-{dev['hi_ms']:.3f} ms){verdict}"
                     + (" EXTRAPOLATED" if dev.get("extrapolated") else ""))
    now = m.get("latency_now")
    if now and now.get("latency_ms"):
        was = f"; recorded {now['recorded_ms']:.3f} ms, {now['difference']:+.1%}" if "recorded_ms" in now else ""
        verdict = f": {now['budget']['text']}" if now.get("budget") else ""
        lines.append(f"  latency on local, measured: {now['latency_ms']:.3f} ms re-measured (interval "
                     f"{now['lo_ms']:.3f}-{now['hi_ms']:.3f} ms{was}){verdict}")
    lines.append(f"  recipe: {m['family']} (recipe.yaml)   files: {', '.join(f.name for f in report.files)}")
    lines += ["", f"  in Python:  model = designspace.build_model('{report.out / 'arch.yaml'}')",
              f"  train it:   designspace train {report.out / 'arch.yaml'} --data DIR --recipe "
              f"{report.out / 'recipe.yaml'} --epochs {HINT_EPOCHS} --out {report.out / 'run'}",
              f"              {_schedule(report.out / 'recipe.yaml')}; --epochs {HINT_EPOCHS} shortens it (the "
              "warm-up in proportion)",
              "              several GPUs: torchrun --standalone --nproc_per_node N -m designspace train ... "
              "--device cuda"]
    print("\n".join(lines))
    return 0


#: the hint's epoch count: a first run on a small dataset, not the recipe's ImageNet-1K schedule (300 epochs)
HINT_EPOCHS = 30


def _schedule(recipe_file: Any) -> str:
    """The recipe's schedule in words (epochs, batch, peak learning rate, warm-up), for the export's hint."""
    from designspace.recipes import load_recipe

    r = load_recipe(recipe_file)
    return (f"the recipe's schedule is ImageNet-1K's: {r.epochs} epochs at batch {r.batch_size}, lr {r.lr:g}, "
            f"{r.warmup_epochs:g} epochs of warm-up, cosine")


def _train(args: argparse.Namespace) -> int:
    from designspace.train import TrainConfig, train

    cfg = TrainConfig(arch=args.arch, data=args.data, out=args.out, recipe=args.recipe, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, resolution=args.resolution,
                      val_fraction=args.val_fraction, workers=args.workers, device=args.device, seed=args.seed,
                      progress=not args.no_progress, amp=args.amp, channels_last=args.channels_last,
                      compile=args.compile, nproc=args.nproc)
    try:
        report = train(cfg, echo=print)
    except KeyboardInterrupt:
        print(f"interrupted; the last finished epoch is saved in {args.out}/checkpoint.pt (resume: rerun this "
              "command)", file=sys.stderr)
        return 130
    if report.processes > 1 and int(os.environ.get("RANK", "0")) != 0:
        return 0  # rank 0 says what the run did
    last = report.history[-1] if report.history else {}
    print(f"done: {report.epochs} epochs in {args.out}/ (metrics.csv, checkpoint.pt, best.pt); best val top-1 "
          f"{report.best_top1:.2f}%, last {last.get('val_top1', float('nan')):.2f}% ({len(report.classes)} classes, "
          f"chance {100 / len(report.classes):.1f}%)" + (f"; {report.skipped} unreadable images skipped"
                                                        if report.skipped else ""))
    return 0


def register(sub: Any) -> None:
    """Adds the commands of this group to the ``designspace`` subparsers."""
    p = sub.add_parser("export", help="a study's trial (or an Arch) as arch.yaml, model.onnx, metrics, a recipe")
    p.add_argument("source", help="STUDY (its best feasible trial), STUDY:TRIAL, an Arch YAML file or a zoo name")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-latency", action="store_true", help="do not re-measure latency")
    p.add_argument("--no-onnx", action="store_true", help="do not write model.onnx")
    p.add_argument("--coreml", action="store_true", help="also write model.mlpackage (Core ML ML program, fp16, iOS "
                                                         "16; converts on Linux, runs on a Mac or an iPhone)")
    p.add_argument("--weights", help="a checkpoint (designspace train's best.pt) whose weights go into model.onnx")
    p.add_argument("--force", action="store_true", help="replace files already in --out")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_export)

    p = sub.add_parser("train", help="train an Arch on an ImageFolder directory with the seed papers' recipe")
    p.add_argument("arch", help="an Arch YAML file (e.g. from designspace export) or a zoo name")
    p.add_argument("--data", required=True, help="dataset folder: one sub-folder of images per class, or train/ "
                                                 "and val/ folders of them")
    p.add_argument("--recipe", help="a recipe YAML or a shipped one (efficientmod, emo, iformer, smt); default: "
                                    "the family the Arch most resembles")
    p.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=64, help="images per optimizer step over all processes (default "
                                                              "64; the recipe's learning rate is scaled linearly)")
    p.add_argument("--lr", type=float, help="peak learning rate at --batch-size (default: the recipe's, scaled)")
    p.add_argument("--resolution", type=int, help="input side in pixels (default: the Arch's)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out share per class without train/val "
                                                                   "folders (default 0.2)")
    p.add_argument("--workers", type=int, help="data-loading worker processes per training process (default: for a "
                                               "GPU the CPUs' share less one, at most 8; on a CPU a quarter of it, "
                                               "none below 4 cores)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="under torchrun each process takes GPU "
                                                                            "LOCAL_RANK")
    p.add_argument("--nproc", "--nproc_per_node", "--nproc-per-node", type=int, dest="nproc",
                   help="refused above 1: processes are started by torchrun --standalone --nproc_per_node N -m "
                        "designspace train ... (each then trains on its share of every batch)")
    p.add_argument("--amp", action="store_true", help="mixed precision: bfloat16 where the device has it, else float16 "
                                                      "on a GPU; refused on a CPU without bfloat16")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: on for cuda, off on the CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward (first epoch slower)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/train", help="run folder; rerunning with it resumes (default runs/train)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
