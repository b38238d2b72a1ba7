"""``mtlswin plan OUT``: the seeds, runs and hours each claim of a finished reproduce folder would need to be
decided (:mod:`mtlswin.pipeline.plan`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mtlswin.pipeline.executors.local import default_jobs
from mtlswin.pipeline.plan import Assumptions, write_plan
from mtlswin.pipeline.presets import PRESETS, get_preset


def _preset_of(out: Path) -> str | None:
    """The preset named in the first line of ``out/report.md`` (``# mtlswin reproduce: preset `demo```)."""
    report = out / "report.md"
    if not report.is_file():
        return None
    with report.open() as f:
        match = re.search(r"preset `([^`]+)`", f.readline())
    return match.group(1) if match and match.group(1) in PRESETS else None


def register(subparsers) -> None:
    """Add the ``plan`` sub-command."""
    p = subparsers.add_parser(
        "plan",
        help="what deciding each claim of a reproduce folder would take: seeds, runs, hours (OUT/plan.csv)",
        description="Reads OUT/claims.csv and the run folders OUT/runs/<row>-seed<k>/ of a finished reproduce; "
        "writes OUT/plan.csv and OUT/plan.md: per claim, the sd of the per-seed differences and its 80% upper bound, "
        "the seeds for 80% power at the paper's difference and at the estimate, for a draw per seed and for one "
        "shared draw, and their cost in runs and hours.",
    )
    p.add_argument("out", type=Path, help="a finished reproduce folder")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="the preset the folder ran, for the claims' families (default: the one its report names)")  # fmt: skip
    p.add_argument("--slots", type=int, default=None,
                   help="runs side by side on this machine (default: reproduce's, one per core, at most 4, for the demo presets)")  # fmt: skip
    p.add_argument("--gpu-speedup", type=float, default=10.0,
                   help="assumed: one GPU trains a run this many times faster than one slot here (default 10)")  # fmt: skip
    p.add_argument("--nodes", type=int, default=8, help="GPUs training seeds side by side (default 8)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    name = args.preset or _preset_of(args.out) or "demo"
    preset = get_preset(name)
    slots = args.slots if args.slots is not None else default_jobs(cpu_only=preset.config_dir == "demo")
    path = write_plan(args.out, Assumptions(slots, args.gpu_speedup, args.nodes), preset.claims)
    print(f"Plan: {path} and {path.with_suffix('.md')} (preset {name}, {slots} slot(s) here)")
    return 0
