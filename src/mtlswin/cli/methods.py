"""Sub-commands of the alternative methods on a trained run: ``mtlswin dfr`` and ``mtlswin cue-probe``."""

from __future__ import annotations

import argparse
import json

from mtlswin.models.registry import models_with
from mtlswin.posthoc.cue_probe import cue_probe
from mtlswin.posthoc.dfr import dfr_run


def register(subparsers) -> None:
    """Add ``dfr`` and ``cue-probe`` to ``subparsers``."""
    d = subparsers.add_parser("dfr", help="Deep Feature Reweighting: refit the last layer on group-balanced val data")
    d.add_argument(
        "run", help=f"run folder of a trained classifier with a linear head ({', '.join(models_with('linear_head'))})"
    )
    d.add_argument("--out", required=True, help="new run folder (config.yaml, model.safetensors, dfr.json)")
    d.add_argument("--split", default="val", help="held-out split the head is refit on (default val)")
    d.add_argument("--C", dest="c", type=float, default=None,
                   help="inverse L1 strength (default: chosen from 1..0.01 on half of the split's patients)")  # fmt: skip
    d.add_argument("--subsamples", type=int, default=10, help="balanced subsamples averaged (default 10)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--batch-size", type=int, default=None)
    d.set_defaults(func=_dfr)

    p = subparsers.add_parser("cue-probe", help="how well a linear probe reads the cue off a run's frozen features")
    p.add_argument(
        "run", help=f"run folder of a trained classifier with a linear head ({', '.join(models_with('linear_head'))})"
    )
    p.add_argument("--split", default="test_b", help="split to probe (default test_b: cue independent of label)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds by patient (default 5)")
    p.add_argument("--n-resamples", type=int, default=1000, help="patient-bootstrap resamples of the 95%% CI")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None)
    p.set_defaults(func=_cue_probe)


def _dfr(args: argparse.Namespace) -> int:
    report = dfr_run(args.run, args.out, args.split, args.c, args.subsamples, args.seed, args.batch_size)
    print(f"DFR: C={report['C']:g}, groups {report['group_sizes']} -> {report['subsample_group_size']} each; "
          f"{args.split} worst-group accuracy {report['worst_group_acc_before']:.3f} -> "
          f"{report['worst_group_acc_after']:.3f} (in-sample). Evaluate with: mtlswin evaluate {args.out}")  # fmt: skip
    return 0


def _cue_probe(args: argparse.Namespace) -> int:
    report = cue_probe(args.run, args.split, args.folds, args.n_resamples, args.seed, args.batch_size)
    print(json.dumps({k: report[k] for k in ("split", "auc", "ci_low", "ci_high", "n_slices", "n_patients")}))
    return 0
