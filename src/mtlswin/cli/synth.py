"""`mtlswin synth`: write the synthetic head-CT phantom (DICOM + masks + manifest)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from mtlswin.cli.data import int_ranges
from mtlswin.data.phantom.generate import SynthConfig
from mtlswin.data.phantom.preview import write_gallery
from mtlswin.data.phantom.writer import write_dataset
from mtlswin.io import created_dir


def _hospitals(text: str) -> tuple[int, ...]:
    return tuple(range(1, 12)) if text == "all" else int_ranges(text)


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
    p.add_argument("--twins", type=_hospitals, default=(),
                   help="hospitals whose slices also get a counterfactual twin (cue flipped, all else identical), "
                   "e.g. 1,5-11 or all; the manifest's `twin` column names each twin")  # fmt: skip
    p.add_argument("--trap-hospitals", type=int, default=0,
                   help="extra trap hospitals 12, ... (default 0 = none): profiles and masks of hospitals 1-4, the cue "
                   "ANTI-correlated with the label (phi = -spurious), a twin for every slice; `split` makes them test_trap")  # fmt: skip
    p.add_argument(
        "--trap-slices",
        type=int,
        default=None,
        help="slices of all trap hospitals together (default: as many as hospitals 5-11 hold)",
    )
    p.add_argument("--test-scale", type=int, default=1,
                   help="the test hospitals (5-11, traps) get N times their slices; hospitals 1-4 stay the same bytes")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="processes writing hospitals in parallel (same files)")
    p.add_argument("--preview", action="store_true", help="also write OUT/preview.png (gallery)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="clear a non-empty --out first (refused without it)")
    p.set_defaults(func=run)


def prepare_out(out: Path, overwrite: bool) -> Path:
    """``out`` ready for a fresh phantom: a non-empty folder is an error, or cleared with ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"--out {str(out)!r} is not empty; its old files would mix with the new phantom. "
                "Give an empty or new folder, or --overwrite to clear it first"
            )
        if out.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents, Path.home().resolve()):
            raise ValueError(f"--overwrite refuses to clear {str(out)!r}: it is the working folder, above it or home")
        shutil.rmtree(out)
    return out


def run(args: argparse.Namespace) -> int:
    config = SynthConfig(
        preset=args.preset, slices=args.slices, size=args.size, seed=args.seed, spurious=args.spurious,
        p_hematoma=args.p_hematoma, p_hypodensity=args.p_hypodensity, twin_hospitals=args.twins,
        trap_hospitals=args.trap_hospitals, trap_slices=args.trap_slices, test_scale=args.test_scale,
    )  # fmt: skip
    config.counts()  # checks --slices (at least one slice per hospital) before anything is written
    out = prepare_out(Path(args.out), args.overwrite)
    start = time.perf_counter()
    with created_dir(out):
        summary = write_dataset(config, out, progress=not args.quiet, workers=args.workers)
    seconds = time.perf_counter() - start
    print(json.dumps(summary, indent=2))
    print(
        f"wrote {summary['slices']} slices to {args.out} in {seconds:.1f} s ({summary['slices'] / seconds:.1f} slices/s)"
    )
    if args.preview:
        print(f"gallery: {write_gallery(out)}")
    return 0
