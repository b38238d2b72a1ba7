"""``mtlswin reproduce``: from nothing (or the user's manifest) to the paper's Table 1.

Stages, each skipped when its output already exists and is valid, so a re-run continues where
the last one stopped:

1. ``data``: the phantom, unless a manifest is given: one draw per training seed for the demo presets
   (``OUT/data/seed-<k>/phantom``; seed k's rows train and are tested on draw k, so a verdict speaks for
   the method on the phantom rather than for one data set), one draw (``OUT/phantom``) otherwise;
2. ``splits``: the paper's protocol (``OUT/splits.csv``, or ``OUT/data/seed-<k>/splits.csv`` per draw);
3. ``train <row>-seed<s>``: one run folder per row and seed under ``OUT/runs`` (a run with a
   ``last.ckpt`` but no exported model is resumed), by an executor (:mod:`mtlswin.pipeline.executors`) from
   the schedule of :mod:`mtlswin.pipeline.schedule`; then the derived rows (:mod:`mtlswin.pipeline.rows`);
4. ``evaluate``: ``metrics.json`` on test_a and test_b of each run;
5. ``audit``: the attribution audit of every classifier run on test_a (each family's method, CAM methods at the finest Swin stage) (``OUT/audit``;
   the grid shows the first seed);
6. ``claims``: the paper's claims as paired differences with intervals over training seeds and test
   patients, per-seed values, runs that did not learn, power, and a verdict each (``OUT/claims.md``,
   ``OUT/claims.csv``, :mod:`mtlswin.pipeline.claims`);
7. ``report``: ``OUT/report.md`` with the splits, claims, results table, figures, audit, and the paper's Table 1
   (:mod:`mtlswin.pipeline.report`).

A preset with an axis (:class:`mtlswin.pipeline.presets.Axis`) repeats 1-6 per value of the axis in a folder of
its own (``OUT/spurious-<s>/``, ``OUT/mask-<f>/``) and writes the axis's report over them
(:mod:`mtlswin.pipeline.sweep`, :func:`mtlswin.pipeline.methods.write_budget_report`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.pipeline import methods
from mtlswin.pipeline.claims import seed_of
from mtlswin.pipeline.executors.base import RunFailed, train_missing
from mtlswin.pipeline.executors.choice import ExecutorChoice
from mtlswin.pipeline.executors.local import default_jobs
from mtlswin.pipeline.experiment_data import SeedData, eval_splits, protocol_text, seed_data, split_has_masks
from mtlswin.pipeline.methods import write_budget_report
from mtlswin.pipeline.presets import AXIS_KINDS, Point, Preset, get_preset
from mtlswin.pipeline.report import clear_failed_runs, write_failed_runs, write_report
from mtlswin.pipeline.run_state import has_logits, run_evaluated, set_aside
from mtlswin.pipeline.schedule import Schedule, build_schedule
from mtlswin.pipeline.stages import AUDIT_SPLIT, Progress, audit, audit_ok, claims, claims_ok
from mtlswin.pipeline.sweep import write_sweep_report
from mtlswin.pipeline.tune import selected_overrides, tuned_text

__all__ = ["AXIS_REPORTS", "Experiment", "reproduce"]

# The report over the sub-experiments of an axis, per axis kind: (out, preset, {value: Experiment}, timings, skipped).
AXIS_REPORTS = {"spurious_strength": write_sweep_report, "mask_budget": write_budget_report}


@dataclass
class Experiment:
    """What one experiment (one phantom or manifest, one set of runs) produced."""

    out: Path
    data: dict[int, SeedData]  # training seed -> its data
    runs: list[Path]
    audit: Path


def _derive_and_evaluate(
    schedule: Schedule, evaluated: set[str], test_splits: dict[int, tuple[str, ...]], progress: Progress, tag: str
) -> None:
    """Make the derived runs from their trained sources, then evaluate every run its worker did not."""
    for run in schedule.derived:
        progress.stage(f"derive {run.name} from {run.source.name}{tag}", run.done, run.make)
    for folder in schedule.results:
        if folder.name in evaluated:  # by its training worker
            continue
        splits = test_splits[seed_of(folder)]
        progress.stage(f"evaluate {folder.name}{tag}", lambda f=folder, s=splits: run_evaluated(f, s),
                       lambda f=folder, s=splits: evaluate_run(f, s))  # fmt: skip


def _audit_and_claims(
    preset: Preset, out: Path, exp: Experiment, seeds: tuple[int, ...], progress: Progress, tag: str,
    log: Callable[[str], None], with_audit: bool = True,
) -> None:  # fmt: skip
    """The cue probes (where the preset asks), the attribution audit of the classifiers, and the claims."""
    classifiers = [r for r in exp.runs if has_logits(r)]  # seed-major: the first seed's runs come first
    if preset.cue_probe:
        for run in classifiers:
            progress.stage(f"cue probe {run.name}{tag}", lambda r=run: methods.cue_probe_ok(r),
                           lambda r=run: methods.run_cue_probe(r))  # fmt: skip
    n_grid = sum(r.name.endswith(f"-seed{seeds[0]}") for r in classifiers)
    first = exp.data[seeds[0]]
    if classifiers and not split_has_masks(first.manifest, first.splits, AUDIT_SPLIT):
        log(f"audit: skipped ({AUDIT_SPLIT} has no slice with a hematoma mask)")
    elif classifiers and with_audit:  # skipped at the interim looks of --until-decided (the claims there need no audit)
        progress.stage(f"audit{tag}", lambda: audit_ok(exp.audit, classifiers),
                       lambda: audit(exp.audit, classifiers, n_grid))  # fmt: skip
    if classifiers and preset.claims:
        progress.stage(f"claims{tag}", lambda: claims_ok(out, exp.runs),
                       lambda: claims(out, exp.runs, exp.audit, preset.claims))  # fmt: skip


def _experiment(
    preset: Preset, out: Path, point: Point, data_root: Path, manifest: str | Path | None, seeds: tuple[int, ...],
    rows: Sequence[str] | None, overrides: Sequence[str], slices: int | None, progress: Progress,
    log: Callable[[str], None], jobs: int = 1, phantom_seed: int = 0, with_audit: bool = True,
    choice: ExecutorChoice | None = None, row_settings: Mapping[str, Sequence[str]] | None = None,
) -> Experiment:  # fmt: skip
    """Data, splits, training, evaluation, audit and claims of one experiment (the sub-experiment ``point``) under
    ``out``, its data under ``data_root``."""
    tag = "" if point.label is None else f" [{point.label}]"
    data = seed_data(preset, data_root, manifest, seeds, slices, progress, log, point.spurious, jobs, phantom_seed)
    test_splits = {seed: eval_splits(data[seed]) for seed in seeds}
    schedule = build_schedule(preset, tuple(rows) if rows is not None else preset.rows, seeds, out / "runs", data,
                              test_splits, [*overrides, *point.overrides], row_settings)  # fmt: skip
    for run in schedule.train:
        set_aside(run.folder, run.digest, log)
    executor = (choice or ExecutorChoice()).build(out, jobs, preset.config_dir == "demo", progress, tag, log)
    try:
        evaluated = train_missing(executor, schedule, progress, tag)
    except RunFailed as err:  # the report says which run failed and why; a rerun continues from here
        write_failed_runs(out, preset, str(err))
        raise
    clear_failed_runs(out)
    _derive_and_evaluate(schedule, evaluated, test_splits, progress, tag)
    exp = Experiment(out, data, list(schedule.results), out / "audit")
    _audit_and_claims(preset, out, exp, seeds, progress, tag, log, with_audit)
    return exp


def reproduce(
    preset_name: str,
    out: str | Path,
    manifest: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    rows: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    slices: int | None = None,
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    phantom_seed: int = 0,
    with_audit: bool = True,
    executor: ExecutorChoice | None = None,
    tuned: tuple[str | Path, str] | None = None,
) -> Path:
    """Run the whole experiment of ``preset_name`` into ``out``; returns the path of ``out/report.md``.

    ``with_audit``: False skips the attribution audit (the interim looks of :mod:`mtlswin.pipeline.sequential`).

    ``phantom_seed``: the master seed of the phantom (with one draw per seed, draw k is
    :func:`draw_seed` ``(phantom_seed, k)``); ignored with a ``manifest``.

    ``jobs``: training runs side by side (default: one per CPU core, at most 4, for the CPU presets; 1 for
    ``paper``), see :mod:`mtlswin.pipeline.executors.local`.

    ``executor``: what trains the runs (default: this machine's processes; ``ExecutorChoice("slurm", ...)``: Slurm
    jobs, :mod:`mtlswin.pipeline.executors.slurm`). Its options are checked before anything is written.

    ``tuned``: ``(OUT of mtlswin tune, rule)``: each row takes the setting that rule selected there
    (:func:`mtlswin.pipeline.tune.selected_overrides`; a row whose trials never learned keeps its own), and the
    report says which.

    ``overrides`` (``key=value``) apply to every row's config after the preset's own paths. A preset with an
    axis (``shortcut-sweep``: the spurious strength; ``mask-budget``: the share of training masks kept) runs one
    experiment per value of it in ``out/<folder>/`` and writes its report (and figure) over them in
    ``out/report.md``.
    """
    preset = get_preset(preset_name)
    executor = executor or ExecutorChoice()
    executor.check(cpu_only=preset.config_dir == "demo")  # e.g. sbatch refuses the partition: nothing written yet
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(log)
    seeds = tuple(seeds) if seeds is not None else preset.seeds
    jobs = jobs if jobs is not None else default_jobs(cpu_only=preset.config_dir == "demo")
    axis = preset.axis
    if axis is not None and AXIS_KINDS[axis.kind].spurious and manifest is not None:
        raise ValueError(f"preset {preset.name!r} generates one phantom per strength; it takes no --manifest")
    row_settings = selected_overrides(*tuned) if tuned is not None else {}
    experiments: dict[float | None, Experiment] = {}
    for point in preset.points():
        sub = out / point.folder
        sub.mkdir(parents=True, exist_ok=True)
        exp = _experiment(preset, sub, point, out if point.shared_data else sub, manifest, seeds, rows, overrides,
                          slices, progress, log, jobs, phantom_seed, with_audit, executor, row_settings)  # fmt: skip
        # without an axis, this experiment's report is the report, with the time per stage of the whole call
        timings, skipped = (progress.timings, progress.skipped) if axis is None else ({}, ())
        protocol = protocol_text(preset, exp.data, "hypodensity") + tuned_text(tuned, row_settings)
        report = write_report(sub, preset, exp.runs, exp.audit, timings, protocol, skipped)
        experiments[point.value] = exp
    if axis is not None:
        report = AXIS_REPORTS[axis.kind](out, preset, experiments, progress.timings, progress.skipped)
    log(f"report: {report}  (total {sum(progress.timings.values()) / 60:.1f} min)")
    return report
