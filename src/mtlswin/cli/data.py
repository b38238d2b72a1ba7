"""Data sub-commands: ``split``, ``prepare``, ``import``, ``validate``. Parsing only; the work is in mtlswin.data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtlswin.data.cache import build_cache
from mtlswin.data.datamodule import parse_window
from mtlswin.data.importers import IMPORTERS
from mtlswin.data.manifest import ManifestError, read_manifest, write_skipped
from mtlswin.data.splits import check_splits, make_splits, read_splits, split_table, split_warnings, write_splits


def int_ranges(text: str) -> tuple[int, ...]:
    """``"1-4"`` or ``"1,2,3,4"`` or ``"5-11"`` -> tuple of ints."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return tuple(out)


def _split(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.manifest, args.target, args.on_bad_row)
    splits = make_splits(
        manifest.table, args.target, args.protocol,
        test_a_hospital=args.test_a_hospital, test_a_fraction=args.test_a_fraction, test_a_size=args.test_a_size,
        trainval_hospitals=args.trainval_hospitals, val_fraction=args.val_fraction,
        test_b_hospitals=args.test_b_hospitals, test_b_size=args.test_b_size, seed=args.seed,
    )  # fmt: skip
    check_splits(manifest.table, splits)
    out = write_splits(splits, args.out)
    print(split_table(manifest.table, splits, args.target))
    for line in split_warnings(manifest.table, splits, args.target):
        print(line, file=sys.stderr)
    print(f"wrote {out}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.manifest, args.target, args.on_bad_row)
    cache_dir = args.cache_dir or Path(args.manifest).parent / ".mtlswin_cache"
    cache = build_cache(manifest, cache_dir, args.size, args.dtype, parse_window(args.window), args.workers, args.force)
    print(f"cache {cache.path}: {len(cache.rows)} slices at {args.size}x{args.size} {args.dtype}")
    print(f"train with data.cache_dir={cache_dir}")
    return 0


def _import(args: argparse.Namespace) -> int:
    result = IMPORTERS[args.format](args.src, args.out)
    print(result.summary())
    return 0


def _validate(args: argparse.Namespace) -> int:
    try:
        manifest = read_manifest(args.manifest, args.target, args.on_bad_row)
    except ManifestError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"{args.manifest}: {len(manifest)} valid slices, markers {list(manifest.markers)}")
    if not manifest.skipped.empty:
        out = write_skipped(manifest, args.skipped_dir or Path(args.manifest).parent)
        print(f"skipped {len(manifest.skipped)} bad rows, listed in {out}")
    if args.splits:
        splits = read_splits(args.splits, manifest.table)
        check_splits(manifest.table, splits)
        print(split_table(manifest.table, splits, args.target))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="manifest CSV")
    p.add_argument("--target", default="hypodensity", help="target marker column (default: hypodensity)")
    p.add_argument("--on-bad-row", choices=("error", "skip"), default="error", help="what to do with bad rows")


def _size_or_all(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of slices or 'all', got {text!r}") from None


def register(subparsers) -> None:
    """Add ``split``, ``prepare``, ``import`` and ``validate`` to ``subparsers``."""
    p = subparsers.add_parser("split", help="make train/val/test_a/test_b splits of a manifest")
    _common(p)
    p.add_argument("--protocol", choices=("paper", "patient"), default="paper")
    p.add_argument("--out", required=True, help="splits CSV to write")
    p.add_argument("--test-a-hospital", type=int, default=1)
    p.add_argument("--test-a-fraction", type=float, default=0.1)
    p.add_argument("--test-a-size", type=int, default=None, help="overrides --test-a-fraction")
    p.add_argument("--trainval-hospitals", type=int_ranges, default=(1, 2, 3, 4), help="e.g. 1-4 or 1,2,3")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-b-hospitals", type=int_ranges, default=tuple(range(5, 12)), help="e.g. 5-11")
    p.add_argument("--test-b-size", type=_size_or_all, default=None,
                   help="slices, or 'all' (every slice of the test-B hospitals); default: the size of test A")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_split)

    p = subparsers.add_parser("prepare", help="decode, window and resize once into a memory-mapped cache")
    _common(p)
    p.add_argument("--size", type=int, default=224, help="model input size (default 224)")
    p.add_argument("--dtype", choices=("uint8", "float16"), default="uint8")
    p.add_argument("--window", default="40,80", help="CENTER,WIDTH in HU, or 'file' (default 40,80)")
    p.add_argument("--cache-dir", default=None, help="default: MANIFEST_DIR/.mtlswin_cache")
    p.add_argument("--workers", type=int, default=2, help="decoding worker processes")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching cache exists")
    p.set_defaults(func=_prepare)

    p = subparsers.add_parser("import", help="write a manifest for an existing data set")
    p.add_argument("format", choices=("authors-npz", "ct-ich", "rsna", "bhsd"))
    p.add_argument("src", help="folder of the data set")
    p.add_argument("--out", required=True, help="output folder (manifest.csv and any image files)")
    p.set_defaults(func=_import)

    p = subparsers.add_parser("validate", help="check a manifest (and splits) and report every problem")
    _common(p)
    p.add_argument("--splits", default=None, help="also check this splits CSV")
    p.add_argument("--skipped-dir", default=None, help="where to write skipped_rows.csv (with --on-bad-row skip)")
    p.set_defaults(func=_validate)
