"""`mtlswin synth`: write the synthetic head-CT phantom (DICOM + masks + manifest)."""

from __future__ import annotations

import argparse
import json
import time


def register(subparsers) -> None:
    """Add ``synth`` to ``subparsers``."""
    p = subparsers.add_parser(
        "synth",
        help="generate the synthetic head-CT phantom data set",
        description="Write synthetic head-CT slices (DICOM), hematoma masks (PNG) and manifest.csv to --out.",
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--preset", choices=("demo", "paper"), default="demo", help="hospital shares and size")
    p.add_argument("--slices", type=int, default=None, help="total slices (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="master seed; same seed -> byte-identical files")
    p.add_argument("--size", type=int, default=None, help="image side in pixels (default 256)")
    p.add_argument("--spurious", type=float, default=0.9, help="cue-label correlation in hospitals 1-4 (0..1)")
    p.add_argument("--p-hematoma", type=float, default=0.30, help="target fraction of slices with a hematoma")
    p.add_argument("--p-hypodensity", type=float, default=0.12, help="target fraction of hypodensity slices")
    p.add_argument("--preview", action="store_true", help="also write OUT/preview.png (gallery)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mtlswin.data.phantom.generate import SynthConfig
    from mtlswin.data.phantom.preview import write_gallery
    from mtlswin.data.phantom.writer import write_dataset

    config = SynthConfig(
        preset=args.preset, slices=args.slices, size=args.size, seed=args.seed, spurious=args.spurious,
        p_hematoma=args.p_hematoma, p_hypodensity=args.p_hypodensity,
    )  # fmt: skip
    config.counts()  # checks --slices (at least one slice per hospital) before anything is written
    start = time.perf_counter()
    summary = write_dataset(config, args.out, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(json.dumps(summary, indent=2))
    print(
        f"wrote {summary['slices']} slices to {args.out} in {seconds:.1f} s ({summary['slices'] / seconds:.1f} slices/s)"
    )
    if args.preview:
        print(f"gallery: {write_gallery(args.out)}")
    return 0
