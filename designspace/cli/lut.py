"""``lut build``: the per-block latency table of a space (every distinct component at its site, measured once)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _build(args: argparse.Namespace) -> int:
    from designspace.evaluate.cache import Cache
    from designspace.evaluate.measure.latency import Context
    from designspace.evaluate.table.term import describe_term
    from designspace.space import load_space
    from designspace.table_build import build_table

    space = load_space(args.space)
    if args.samples < 1 or args.calibrate < 0 or args.threads < 1:
        from designspace.exceptions import DesignspaceError

        raise DesignspaceError("--samples and --threads must be at least 1 and --calibrate at least 0 "
                               "(fix: --samples 2000 --calibrate 6)")
    bar = None
    if not args.no_progress and not args.json:
        from tqdm import tqdm

        bar = tqdm(desc=f"lut {space.name}", unit="entry", dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        # strict: the table is all this command makes, so a cache that cannot be written ends it with one line
        report = build_table(space, Context.local("onnxruntime", args.threads), Cache(strict=True),
                             samples=args.samples, calibrate=args.calibrate, seed=args.seed, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps({"space": space.name, **report}, indent=2))
        return 0
    fit = report["fit"]
    coverage = ("saturated: the last batch added none" if report["saturated"]
                else f"{report['new_in_last_batch']} new in the last batch: raise --samples for more")
    print(f"{space.name}: {report['entries']} distinct (component, site) entries from {report['drawn']} points "
          f"({coverage}); measured {report['measured']} now, {report['cached']} already in the table; "
          f"{report['seconds']} s")
    if fit is not None:
        print(f"per-network term: {describe_term(fit)}, fitted on {fit['points']} networks measured whole (this "
              f"space's and those of tables built before); leave-one-out error {fit['loo_mean']:.1%} mean, "
              f"{fit['loo_max']:.1%} max")
    print("use it: designspace eval ARCH --latency table; designspace search SPACE --latency table")
    return 0


def register(sub: Any) -> None:
    """Adds the commands of this group to the ``designspace`` subparsers."""
    p = sub.add_parser("lut", help="the per-block latency table (lut build SPACE)")
    lut = p.add_subparsers(dest="lut_command", metavar="ACTION", required=True, parser_class=type(p))
    b = lut.add_parser("build", help="measure every distinct (component, site) a space can produce; resumable")
    b.add_argument("space", help="a Space YAML file or a shipped space name")
    b.add_argument("--samples", type=int, default=2000, help="points drawn at most to find the entries (default "
                                                              "2000; drawing stops when a batch of 200 adds none)")
    b.add_argument("--calibrate", type=int, default=6, help="seeded points spanning the space's sizes (smallest "
                                                             "to largest by MACs of 2000 draws), measured whole with "
                                                             "the space's zoo models, in two passes, to fit the "
                                                             "per-network term (default 6)")
    b.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    b.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--json", action="store_true", help="print the coverage report as JSON")
    b.set_defaults(func=_build)
