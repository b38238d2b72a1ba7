"""``mtlswin reproduce``: the paper's experiment end to end (see :mod:`mtlswin.pipeline.reproduce`).

The pipeline itself is imported when the command runs: it brings the training, evaluation and audit code,
which ``mtlswin --help`` does not need.
"""

from __future__ import annotations

import argparse

from mtlswin.pipeline import sequential
from mtlswin.pipeline.executors.choice import EXECUTORS, ExecutorChoice
from mtlswin.pipeline.executors.slurm import parse_slurm_option
from mtlswin.pipeline.presets import PRESETS
from mtlswin.pipeline.reproduce import reproduce
from mtlswin.pipeline.tune import RULES


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _slurm_option(text: str) -> tuple[str, object]:
    try:
        return parse_slurm_option(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def register(subparsers) -> None:
    """Add the ``reproduce`` sub-command."""
    p = subparsers.add_parser(
        "reproduce",
        help="phantom (or your manifest) -> splits -> train Table-1 rows -> evaluate -> Grad-CAM audit -> report",
        description="Every stage is skipped when its output exists and is valid; re-running continues. "
        + "Presets: " + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()),
    )  # fmt: skip
    p.add_argument("--preset", default="demo", choices=list(PRESETS), help="which rows, sizes and seeds (default demo)")
    p.add_argument("--out", required=True, help="output folder (report at OUT/report.md)")
    p.add_argument("--manifest", default=None, help="your data set's manifest CSV (default: generate the phantom)")
    p.add_argument("--seeds", type=_ints, default=None, help="comma-separated seeds (default: the preset's)")
    p.add_argument("--rows", type=_names, default=None, help="comma-separated Table-1 rows (default: the preset's)")
    p.add_argument("--slices", type=int, default=None, help="phantom size in slices (default: the preset's)")
    p.add_argument("--phantom-seed", type=int, default=0,
                   help="master seed of the phantom; the demo presets train seed k on draw 1000*SEED+k (default 0)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None,
                   help="training runs side by side (default: one per CPU core, at most 4, for the demo presets; "
                   "1 for paper)")  # fmt: skip
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="what trains the runs: this machine's processes (default) or Slurm jobs through submitit "
                   "(docs/cluster.md)")  # fmt: skip
    p.add_argument("--runs-per-gpu", type=_positive, default=None, metavar="N",
                   help="N small runs share a GPU: local, N at a time per visible GPU (no GPU visible: the --jobs "
                   "slots); slurm, N runs per job (default: one)")  # fmt: skip
    p.add_argument("--slurm", action="append", type=_slurm_option, default=None, metavar="KEY=VALUE",
                   help="with --executor slurm, repeatable: partition, time (minutes), gpus_per_node, cpus_per_task, "
                   "mem_gb, account, constraint")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="config override applied to every row, repeatable: --set trainer.devices=4 --set train.epochs=5")  # fmt: skip
    p.add_argument("--until-decided", action="store_true",
                   help="add seeds in batches until every primary claim is decided (group-sequential, Holm; "
                   "OUT/sequential.csv), or --max-seeds or --budget is reached; a rerun continues")  # fmt: skip
    p.add_argument("--max-seeds", type=int, default=24, help="with --until-decided: the most seeds (default 24)")
    p.add_argument("--batch-seeds", type=int, default=3, help="with --until-decided: seeds per look (default 3)")
    p.add_argument("--budget", type=float, default=None, metavar="HOURS",
                   help="with --until-decided: stop before a batch that would overrun HOURS of wall time")  # fmt: skip
    p.add_argument(
        "--tuned",
        default=None,
        metavar="TUNE_OUT",
        help="train each row at the setting `mtlswin tune --out TUNE_OUT` selected by --rule (docs/tuning.md)",
    )
    p.add_argument(
        "--rule",
        choices=list(RULES),
        default=None,
        help="with --tuned: val_auc (a user without cue labels) or worst_group (with them)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    executor = ExecutorChoice(args.executor, args.runs_per_gpu, dict(args.slurm or []))
    if (args.tuned is None) != (args.rule is None):
        raise ValueError("--tuned and --rule go together: --tuned TUNE_OUT --rule val_auc|worst_group")
    if args.until_decided:
        if args.tuned is not None:
            raise ValueError("--until-decided does not take --tuned yet; run the tuned preset with fixed seeds")
        report = sequential.run_from_args(args, executor)
        print(f"Done. Open {report}")
        return 0
    report = reproduce(
        args.preset, args.out, manifest=args.manifest, seeds=args.seeds, rows=args.rows,
        overrides=args.overrides or [], slices=args.slices, jobs=args.jobs, phantom_seed=args.phantom_seed,
        executor=executor, tuned=(args.tuned, args.rule) if args.tuned is not None else None,
    )  # fmt: skip
    print(f"Done. Open {report}")
    return 0
