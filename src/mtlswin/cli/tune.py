"""``mtlswin tune --out OUT``: the same budget of trials for every method, selected by the two rules of
docs/tuning.md (:mod:`mtlswin.pipeline.tune`)."""

from __future__ import annotations

import argparse

from mtlswin.pipeline.tune import GRIDS, TUNE_PHANTOM_SEED, tune
from mtlswin.pipeline.tune_pretrain import tune_pretraining


def register(subparsers) -> None:
    """Add the ``tune`` sub-command."""
    p = subparsers.add_parser(
        "tune",
        help="the same budget of hyper-parameter trials for every method, selected by two rules fixed in advance",
        description="Trains each method's trials (docs/tuning.md) with seed 0 on a phantom draw no claim uses, scores "
        "them on the validation split, and writes OUT/trials.csv, OUT/tune.md, OUT/selected.csv and "
        "OUT/selected/<rule>/<row>.yaml. Rerun the methods preset with them: mtlswin reproduce --preset methods "
        "--tuned OUT --rule val_auc|worst_group. A rerun continues where it stopped.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--rows", default=None, help=f"comma-separated method rows (default all: {','.join(GRIDS)})")
    p.add_argument("--jobs", type=int, default=None, help="runs side by side (default: one per core, at most 4)")
    p.add_argument("--phantom-seed", type=int, default=TUNE_PHANTOM_SEED,
                   help=f"master seed of the phantom draw (default {TUNE_PHANTOM_SEED}: none of the claims' draws)")  # fmt: skip
    p.add_argument("--slices", type=int, default=None, help="phantom size in slices (default: the methods preset's)")
    p.add_argument(
        "--pretrain",
        action="store_true",
        help="calibrate SimMIM pretraining instead (Swin, spurious strength 0; OUT/pretrain.md)",
    )
    p.add_argument(
        "--pretrain-set",
        dest="pretrain_overrides",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="with --pretrain: override of every pretraining (not part of docs/tuning.md; for small checks)",
    )
    p.add_argument(
        "--corpus-slices",
        type=int,
        default=None,
        help="with --pretrain: slices of the unlabelled corpus (default 6000, as in docs/calibration.md)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="config override of every run (not part of docs/tuning.md's search; for small checks)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.pretrain:
        if args.rows:
            raise ValueError("--pretrain calibrates Swin's pretraining; it takes no --rows")
        report = tune_pretraining(args.out, jobs=args.jobs, overrides=args.overrides or (),
                                  pretrain_overrides=args.pretrain_overrides or (), slices=args.slices,
                                  corpus_slices=args.corpus_slices)  # fmt: skip
        print(f"Done. Open {report}")
        return 0
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    report = tune(args.out, rows=rows, jobs=args.jobs, phantom_seed=args.phantom_seed, overrides=args.overrides or (),
                  slices=args.slices)  # fmt: skip
    print(f"Done. Open {report}")
    return 0
