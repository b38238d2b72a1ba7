"""Sub-commands ``train``, ``evaluate``, ``report``, ``predict`` (parsing only; the work is in mtlswin.training)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlswin.config import load_config
from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.evaluation.predict import predict_files
from mtlswin.evaluation.report import write_report
from mtlswin.runs import read_run_config
from mtlswin.training.train import train


def register(subparsers) -> None:
    """Add ``train``, ``evaluate``, ``report`` and ``predict`` to ``subparsers``."""
    p = subparsers.add_parser("train", help="train one config (a Table-1 row) with Lightning")
    p.add_argument("config", help="YAML config (configs/paper/*.yaml, configs/demo/*.yaml) or a run folder to resume")
    p.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="override a config key, repeatable: --set train.lr=0.1 --set trainer.devices=2")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.ckpt")
    p.add_argument("--evaluate", action="store_true", help="run `evaluate` on test_a/test_b after training")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("evaluate", help="metrics of a trained run on test splits (metrics.json)")
    p.add_argument("run", help="run folder")
    p.add_argument("--split", action="append", default=None, help="split name (repeatable); default test_a and test_b")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser(
        "report", help="Table 1 (Markdown + CSV), ROC curves, training curves, confusion matrices"
    )
    p.add_argument("runs", nargs="+", help="evaluated run folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--audit", default=None, help="Grad-CAM audit folder (audit.md, audit.csv, gradcam_grid.png)")
    p.set_defaults(func=_report)

    p = subparsers.add_parser("predict", help="classify DICOM files or folders with a trained run or checkpoint")
    p.add_argument("run", help="run folder, .ckpt or .safetensors")
    p.add_argument("inputs", nargs="+", help="image files (DICOM, PNG/JPEG, .npy, NIfTI) or folders (recursive)")
    p.add_argument("--out", required=True, help="output folder (predictions.csv, overlays/)")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the run's, 0.5)")
    p.add_argument("--no-masks", action="store_true",
                   help="classification only: skip the decoders and the mask overlays (faster)")  # fmt: skip
    p.set_defaults(func=_predict)


def _train(args: argparse.Namespace) -> int:
    path = Path(args.config)
    if path.is_dir():  # a run folder: its config, data paths resolved, output = where the folder is now
        config = read_run_config(path, args.overrides or [])
    else:
        config = load_config(path, args.overrides or [])
    run_dir = train(config, resume=args.resume)
    print(f"run folder: {run_dir}")
    if args.evaluate and (run_dir / "model.safetensors").is_file():
        _print_metrics(_run_evaluate(run_dir, None, 1000, 0))
    return 0


def _run_evaluate(run: Path, splits, n_boot: int, seed: int) -> dict:
    return evaluate_run(run, splits, n_boot=n_boot, seed=seed)


def _print_metrics(results: dict) -> None:
    keys = ("iou", "acc", "precision", "recall", "f1_pos", "f1_macro", "auc")
    for split, values in results.items():
        shown = ", ".join(
            f"{k} {values[k]:.3f}" for k in keys if isinstance(values.get(k), float) and values[k] == values[k]
        )
        print(f"{split}: {shown}")
        if values.get("auc_undefined"):
            print(f"{split}: {values['auc_undefined']}")


def _evaluate(args: argparse.Namespace) -> int:
    _print_metrics(_run_evaluate(Path(args.run), args.split, args.bootstrap, args.seed))
    print(f"wrote {Path(args.run) / 'metrics.json'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    out = write_report([Path(r) for r in args.runs], Path(args.out), audit=args.audit)
    print(f"wrote {out}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    table = predict_files(args.run, args.inputs, Path(args.out), threshold=args.threshold, masks=not args.no_masks)
    print(f"{len(table)} slices -> {Path(args.out) / 'predictions.csv'}")
    if (Path(args.out) / "skipped.csv").is_file():
        print(f"unreadable inputs skipped: see {Path(args.out) / 'skipped.csv'}")
    return 0
