"""``mtlswin compare LABEL=FOLDER ... --out DIR``: finished reproduce folders side by side, claims and the
settings in which their rows differ (:mod:`mtlswin.pipeline.compare`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlswin.pipeline.compare import write_comparison


def _labelled(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: write LABEL=FOLDER, for example a-priori=runs/methods")
    return label, Path(folder)


def register(subparsers) -> None:
    """Add the ``compare`` sub-command."""
    p = subparsers.add_parser(
        "compare",
        help="finished reproduce folders side by side: each claim's verdict in each, and how their rows' settings differ",
        description="Reads FOLDER/claims.csv and FOLDER/runs/<row>-seed<k>/config.yaml of each folder; writes "
        "OUT/compare.md, OUT/compare.csv (one line per claim, estimate, interval and verdict per folder, whether "
        "the verdict changed) and OUT/compare_settings.csv. For the fair race: "
        "mtlswin compare a-priori=runs/methods val_auc=runs/methods-val-auc worst_group=runs/methods-worst-group "
        "--out runs/methods-compared",
    )
    p.add_argument("folders", nargs="+", type=_labelled, metavar="LABEL=FOLDER", help="two or more reproduce folders")
    p.add_argument("--out", type=Path, required=True, help="where compare.md and the CSV files go")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    labels = [label for label, _ in args.folders]
    if len(set(labels)) != len(labels):
        raise ValueError(f"each folder needs its own label: {', '.join(labels)}")
    path = write_comparison(dict(args.folders), args.out)
    print(f"Comparison: {path}")
    return 0
