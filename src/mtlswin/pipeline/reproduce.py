"""``mtlswin reproduce``: from nothing (or the user's manifest) to the paper's Table 1.

Stages, each skipped when its output already exists and is valid, so a re-run continues where
the last one stopped:

1. ``data``: the phantom, unless a manifest is given: one draw per training seed for the demo presets
   (``OUT/data/seed-<k>/phantom``; seed k's rows train and are tested on draw k, so a verdict speaks for
   the method on the phantom rather than for one data set), one draw (``OUT/phantom``) otherwise;
2. ``splits``: the paper's protocol (``OUT/splits.csv``, or ``OUT/data/seed-<k>/splits.csv`` per draw);
3. ``train <row>-seed<s>``: one run folder per row and seed under ``OUT/runs`` (a run with a
   ``last.ckpt`` but no exported model is resumed);
4. ``evaluate``: ``metrics.json`` on test_a and test_b of each run;
5. ``audit``: the Grad-CAM audit of every classifier run on test_a at the finest Swin stage (``OUT/audit``;
   the grid shows the first seed);
6. ``claims``: the paper's claims as paired differences with intervals over training seeds and test
   patients, per-seed values, runs that did not learn, power, and a verdict each (``OUT/claims.md``,
   ``OUT/claims.csv``, :mod:`mtlswin.pipeline.claims`);
7. ``report``: ``OUT/report.md`` with the splits, claims, results table, figures, audit, and the paper's Table 1.

The ``shortcut-sweep`` preset repeats 1-6 per spurious strength (``OUT/spurious-<s>/``) and adds the
dose-response figure (:mod:`mtlswin.pipeline.sweep`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mtlswin.paper_table import PAPER_TABLE1_MD
from mtlswin.pipeline.claims import CLAIMS, row_of, seed_of
from mtlswin.pipeline.experiment_data import (
    EVAL_SPLITS,
    SeedData,
    eval_splits,
    protocol_text,
    seed_data,
    split_has_masks,
)
from mtlswin.pipeline.initialisation import initialisation_markdown
from mtlswin.pipeline.parallel import RunClock, TrainTask, default_jobs, run_tasks, train_config
from mtlswin.pipeline.presets import (
    ALL_ROWS,
    AUXILIARY_ROWS,
    DERIVED_ROWS,
    METHOD_ROWS,
    SEGMENTATION_RUN_FOR,
    Preset,
    get_preset,
    ordered_rows,
)
from mtlswin.pipeline.stages import Progress, time_table

AUDIT_SPLIT = "test_a"


def config_path(preset: Preset, row: str) -> Path:
    """The shipped YAML of ``row`` for ``preset`` (``mtlswin/configs/<dir>/<row>.yaml``)."""
    if row == "swin_unet_tiny":  # the Swin-Unet config, with Joint-Swin-tiny's depths (see row_overrides)
        row = "swin_unet"
    path = Path(str(resources.files("mtlswin") / "configs" / preset.config_dir / f"{row}.yaml"))
    if not path.is_file():
        raise FileNotFoundError(f"no config for row {row!r} of preset {preset.name!r} at {path}")
    return path


def row_overrides(preset: Preset, row: str) -> list[str]:
    """Overrides a row needs beyond its YAML: the auxiliary ``swin_unet_tiny`` takes Joint-Swin-tiny's depths."""
    if row != "swin_unet_tiny":
        return []
    import yaml

    depths = yaml.safe_load(config_path(preset, "joint_swin_tiny").read_text())["model"].get("depths", [2, 2, 6, 2])
    return [f"model.depths=[{','.join(str(d) for d in depths)}]"]


def _row_digest(cfg_file: Path, overrides: list[str]) -> str:
    """The digest ``train`` will store for this row's resolved config (:func:`mtlswin.runs.config_digest`)."""
    from mtlswin.config import load_config
    from mtlswin.runs import config_digest

    return config_digest(load_config(cfg_file, overrides))


def _stored_digest(run: Path) -> str | None:
    from mtlswin.runs import DIGEST_FILE

    path = run / DIGEST_FILE
    return path.read_text().strip() if path.is_file() else None


def _run_ok(run: Path, digest: str) -> bool:
    """Done: a readable model.safetensors header, config.yaml, and the stored config digest equal to ``digest``."""
    from mtlswin.runs import run_tasks

    if not (run / "config.yaml").is_file() or _stored_digest(run) != digest:
        return False
    try:
        run_tasks(run)
    except (OSError, ValueError):
        return False
    return True


def _set_aside(run: Path, digest: str, log: Callable[[str], None]) -> None:
    """A run folder trained with other settings is renamed (never deleted) before this row is trained afresh."""
    old = _stored_digest(run)
    if not run.exists() or old in (None, digest):
        return
    aside = run.with_name(f"{run.name}.replaced-{old[:12]}")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(run, aside)
    log(f"{run.name}: its config changed (another --set?); the old run was moved to {aside}")


def _evaluated(run: Path, splits: tuple[str, ...] = EVAL_SPLITS) -> bool:
    path = run / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return False
    return isinstance(metrics, dict) and all(isinstance(metrics.get(s), dict) for s in splits)


def _has_logits(run: Path) -> bool:
    from mtlswin.runs import run_tasks

    return "cls" in run_tasks(run)


def _audited_runs(runs: list[Path]) -> list[dict[str, str | None]]:
    """What runs.json records: each audited run folder and its config digest (a retrained run is re-audited)."""
    return [{"run": str(r), "config_sha256": _stored_digest(r)} for r in runs]


def _audit_ok(audit: Path, runs: list[Path]) -> bool:
    listed = audit / "runs.json"
    try:
        same = listed.is_file() and json.loads(listed.read_text()) == _audited_runs(runs)
    except ValueError:
        return False
    return same and (audit / "audit.csv").is_file() and (audit / "gradcam_grid.png").is_file()


def _audit(audit: Path, runs: list[Path], grid_runs: int | None = None) -> None:
    from mtlswin.explain.collect import audit_runs
    from mtlswin.io import atomic_write_text

    (audit / "runs.json").unlink(missing_ok=True)  # the audit files are replaced one by one: not done until the end
    audit_runs(runs, AUDIT_SPLIT, audit, stage=AUDIT_STAGE, grid_runs=grid_runs)
    atomic_write_text(audit / "runs.json", json.dumps(_audited_runs(runs)))


def _claims_ok(out: Path, runs: list[Path]) -> bool:
    """claims.csv exists and is newer than every run's metrics.json and the audit it summarises."""
    path = out / "claims.csv"
    inputs = [r / "metrics.json" for r in runs] + [out / "audit" / "audit_slices.csv"]
    return path.is_file() and all(path.stat().st_mtime >= p.stat().st_mtime for p in inputs if p.is_file())


def _claims(out: Path, runs: list[Path], audit: Path, claims: tuple = CLAIMS) -> None:
    from mtlswin.io import atomic_path, atomic_write_text
    from mtlswin.pipeline.claims import evaluate_claims, load_evidence
    from mtlswin.pipeline.claims_table import claims_markdown

    table = evaluate_claims(load_evidence(runs, audit / "audit_slices.csv"), claims, n_resamples=CLAIM_RESAMPLES)
    atomic_write_text(out / "claims.md", claims_markdown(table, CLAIM_RESAMPLES))
    with atomic_path(out / "claims.csv") as tmp:  # last: its presence marks the stage done
        table.to_csv(tmp, index=False)


def _write_report(
    out: Path,
    preset: Preset,
    runs: list[Path],
    audit: Path,
    timings: dict[str, float],
    protocol: str = "",
    skipped: Collection[str] = (),
) -> Path:
    from mtlswin.evaluation.report import write_report
    from mtlswin.io import atomic_write_text

    report = write_report(runs, out, audit=audit if (audit / "audit.md").is_file() else None)
    text = report.read_text()
    head = (
        f"# mtlswin reproduce: preset `{preset.name}`\n\n{preset.description}.\n\n"
        "Test A = slices of hospital 1 (where the spurious cue holds in training); test B = hospitals 5-11 "
        "(covariate shift, cue independent of the label). F1 = macro F1.\n\n"
    )
    if preset.config_dir == "demo":
        head += DEMO_RECIPE_NOTE
    head += initialisation_markdown(runs) + protocol
    if any(row_of(r) in METHOD_ROWS for r in runs):
        from mtlswin.pipeline.methods import methods_markdown, methods_table

        head += "\n## The alternatives, side by side\n\n" + methods_markdown(methods_table(runs), ALL_ROWS) + "\n"
    if (out / "claims.md").is_file():
        title = "The paper's claims, tested" if preset.claims == CLAIMS else "The comparisons, tested"
        head += f"\n## {title}\n\n" + (out / "claims.md").read_text() + "\n"
    text = text.replace("# Results (Table 1 layout)", head + "## Results (Table 1 layout)", 1)
    text += (
        "\n## The paper's Table 1, for orientation\n\n"
        "These are the numbers the paper reports on its private CT data at full size (224 px, 600 epochs, "
        "ImageNet-initialised encoders). The table above comes from different data (here: "
        f"{'the synthetic phantom' if preset.phantom else 'your manifest'}) and, for the demo presets, "
        "from tiny models trained for minutes on a CPU, so the two are not comparable number for number; "
        "compare the ordering of the rows, not the values.\n\n" + PAPER_TABLE1_MD
    )
    text += "\n" + time_table(timings, skipped)
    atomic_write_text(report, text)
    return report


DEMO_RECIPE_NOTE = (
    "**Recipe.** The paper fine-tunes ImageNet-initialised encoders with SGD (momentum 0.9, poly decay). No "
    "ImageNet weights can be had offline, and from scratch that recipe leaves a Swin at chance on this data "
    "(measured: SGD 0.05 for 300 steps, val AUC 0.41-0.55; a linear probe on the same pixels reaches 0.9). The "
    "demo therefore trains every row from scratch with one recipe: input standardised with the train split's "
    "mean and std (saved in the model), AdamW 5e-4, 60 warm-up steps, cosine decay, no drop path, batch 32, "
    "24 epochs. The 24 epochs were chosen "
    "blind to the claim, from plain Swin alone on a phantom without the spurious cue (mean test-A AUC .928 over "
    "seeds 0-2, the criterion being >= .90; 6 epochs gave .735, and SimMIM pretraining on a separate unlabeled "
    "draw of 6,000 slices for 20 epochs did not help: docs/calibration.md). The `paper` configs keep the paper's "
    "recipe.\n\n"
)
CLAIM_RESAMPLES = 1000
AUDIT_STAGE = 0  # the finest Swin stage: the bottleneck map is too coarse to outline a hematoma at demo size


@dataclass
class Experiment:
    """What one experiment (one phantom or manifest, one set of runs) produced."""

    out: Path
    data: dict[int, SeedData]  # training seed -> its data
    runs: list[Path]
    audit: Path


def _train_runs(
    tasks: list[TrainTask], runs_dir: Path, jobs: int, progress: Progress, tag: str, log: Callable[[str], None]
) -> set[str]:
    """Train every task whose run is not done: one after the other, or ``jobs`` at a time on the CPU, where each
    worker also evaluates its run once trained (:class:`TrainTask` ``.evaluate``). Returns the runs so evaluated."""
    todo = [t for t in tasks if not _run_ok(runs_dir / t.name, t.digest)]
    for task in tasks:
        if task not in todo:
            progress.stage(f"train {task.name}{tag}", lambda: True, lambda: None)
    if jobs <= 1 or len(todo) <= 1:
        clock = RunClock(len(todo))
        for task in todo:
            progress.stage(f"train {task.name}{tag}", lambda t=task: _run_ok(runs_dir / t.name, t.digest),
                           lambda t=task: train_config(t.config, t.overrides))  # fmt: skip
            log(f"training: {clock.finished(progress.timings[f'train {task.name}{tag}'])}{tag}")
        return set()
    # several runs share the terminal: no per-run progress bars or model summaries, one line per event
    quiet = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    start = time.perf_counter()
    run_tasks(todo, jobs, log=lambda m: log(f"{m}{tag}"), quiet_overrides=quiet)  # logs each run's own time
    evaluated = {t.name for t in todo if t.evaluate}
    for task in todo:
        if not _run_ok(runs_dir / task.name, task.digest):
            raise RuntimeError(f"training {task.name} finished but wrote no model.safetensors")
        if task.name in evaluated and not _evaluated(runs_dir / task.name, task.evaluate):
            raise RuntimeError(f"evaluating {task.name} finished but its metrics.json lacks a split of {task.evaluate}")
    what = "train and evaluate" if evaluated else "train"
    progress.timings[f"{what} {len(todo)} runs, {jobs} at a time{tag}"] = time.perf_counter() - start
    return evaluated


def _experiment(
    preset: Preset, out: Path, manifest: str | Path | None, seeds: tuple[int, ...], rows: Sequence[str] | None,
    overrides: Sequence[str], slices: int | None, progress: Progress, log: Callable[[str], None],
    spurious: float | None = None, jobs: int = 1, phantom_seed: int = 0, data_root: Path | None = None,
    label: str | None = None,
) -> Experiment:  # fmt: skip
    """Data, splits, training, evaluation, audit and claims of one experiment under ``out`` (its data under
    ``data_root``, default ``out``: the mask-budget preset shares one set of draws between budgets)."""
    from mtlswin.pipeline import methods

    label = label or (None if spurious is None else f"spurious {spurious:g}")
    tag = "" if label is None else f" [{label}]"
    data = seed_data(preset, data_root or out, manifest, seeds, slices, progress, log, spurious, jobs, phantom_seed)
    runs_dir = out / "runs"
    row_list = ordered_rows(tuple(rows) if rows is not None else preset.rows)
    runs: list[Path] = []
    tasks: list[TrainTask] = []
    test_splits = {seed: eval_splits(data[seed]) for seed in seeds}
    for seed in seeds:
        for row in row_list:
            run = runs_dir / f"{row}-seed{seed}"
            if row not in AUXILIARY_ROWS:
                runs.append(run)
            if row in DERIVED_ROWS:
                continue
            cfg = [
                f"data.manifest={data[seed].manifest}",
                f"data.splits={data[seed].splits}",
                f"data.cache_dir={data[seed].cache}",
                f"train.seed={seed}",
                f"output.dir={runs_dir}",
                f"output.name={run.name}",
            ]
            needs = []
            if row in SEGMENTATION_RUN_FOR:
                needs.append(f"{SEGMENTATION_RUN_FOR[row]}-seed{seed}")
                cfg.append(f"model.frozen_encoder={runs_dir / needs[0]}")
            cfg += row_overrides(preset, row) + list(overrides)
            digest = _row_digest(config_path(preset, row), cfg)
            _set_aside(run, digest, log)
            splits = test_splits[seed] if row not in AUXILIARY_ROWS else None  # evaluated once trained
            tasks.append(TrainTask(run.name, config_path(preset, row), cfg, needs, digest, splits))
    evaluated = _train_runs(tasks, runs_dir, jobs, progress, tag, log)
    for run in runs:
        source = DERIVED_ROWS.get(row_of(run))
        if source:
            source_run = run.with_name(f"{source}-seed{seed_of(run)}")
            progress.stage(f"derive {run.name} from {source_run.name}{tag}",
                           lambda r=run, s=source_run: methods.derived_ok(r, s),
                           lambda r=run, s=source_run: methods.derive(r, s))  # fmt: skip
    from mtlswin.evaluation.evaluate import evaluate_run

    for run in runs:
        if run.name in evaluated:  # by its training worker
            continue
        splits = test_splits[seed_of(run)]
        progress.stage(f"evaluate {run.name}{tag}", lambda run=run, s=splits: _evaluated(run, s),
                       lambda run=run, s=splits: evaluate_run(run, s))  # fmt: skip

    audit = out / "audit"
    classifiers = [r for r in runs if _has_logits(r)]  # seed-major: the first seed's runs come first
    if preset.cue_probe:
        for run in classifiers:
            progress.stage(f"cue probe {run.name}{tag}", lambda r=run: methods.cue_probe_ok(r),
                           lambda r=run: methods.run_cue_probe(r))  # fmt: skip
    n_grid = sum(r.name.endswith(f"-seed{seeds[0]}") for r in classifiers)
    first = data[seeds[0]]
    if classifiers and not split_has_masks(first.manifest, first.splits, AUDIT_SPLIT):
        log(f"audit: skipped ({AUDIT_SPLIT} has no slice with a hematoma mask)")
    elif classifiers:
        progress.stage(f"audit{tag}", lambda: _audit_ok(audit, classifiers), lambda: _audit(audit, classifiers, n_grid))
    if classifiers and preset.claims:
        progress.stage(f"claims{tag}", lambda: _claims_ok(out, runs),
                       lambda: _claims(out, runs, audit, preset.claims))  # fmt: skip
    return Experiment(out, data, runs, audit)


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
) -> Path:
    """Run the whole experiment of ``preset_name`` into ``out``; returns the path of ``out/report.md``.

    ``phantom_seed``: the master seed of the phantom (with one draw per seed, draw k is
    :func:`draw_seed` ``(phantom_seed, k)``); ignored with a ``manifest``.

    ``jobs``: training runs side by side (default: one per CPU core, at most 4, for the CPU presets; 1 for
    ``paper``), see :mod:`mtlswin.pipeline.parallel`.

    ``overrides`` (``key=value``) apply to every row's config after the preset's own paths. A preset with
    ``strengths`` (``shortcut-sweep``) runs one experiment per spurious strength in ``out/spurious-<s>/``
    and writes the dose-response figure and ``out/report.md`` over them.
    """
    preset = get_preset(preset_name)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(log)
    seeds = tuple(seeds) if seeds is not None else preset.seeds
    jobs = jobs if jobs is not None else default_jobs(cpu_only=preset.config_dir == "demo")
    if preset.strengths:
        if manifest is not None:
            raise ValueError(f"preset {preset.name!r} generates one phantom per strength; it takes no --manifest")
        from mtlswin.pipeline.sweep import write_sweep_report

        experiments = {}
        for strength in preset.strengths:
            sub = out / f"spurious-{strength:g}"
            sub.mkdir(parents=True, exist_ok=True)
            exp = _experiment(preset, sub, None, seeds, rows, overrides, slices, progress, log, strength, jobs,
                              phantom_seed)  # fmt: skip
            _write_report(sub, preset, exp.runs, exp.audit, {}, protocol_text(preset, exp.data, "hypodensity"))
            experiments[strength] = exp
        report = write_sweep_report(out, preset, experiments, progress.timings, progress.skipped)
    elif preset.mask_budgets:
        from mtlswin.pipeline.methods import write_budget_report

        experiments = {}
        for budget in preset.mask_budgets:
            sub = out / f"mask-{budget:g}"
            sub.mkdir(parents=True, exist_ok=True)
            exp = _experiment(preset, sub, manifest, seeds, rows, [*overrides, f"data.mask_fraction={budget}"], slices,
                              progress, log, None, jobs, phantom_seed, data_root=out, label=f"masks {budget:g}")  # fmt: skip
            _write_report(sub, preset, exp.runs, exp.audit, {}, protocol_text(preset, exp.data, "hypodensity"))
            experiments[budget] = exp
        report = write_budget_report(out, preset, experiments, progress.timings, progress.skipped)
    else:
        exp = _experiment(preset, out, manifest, seeds, rows, overrides, slices, progress, log, jobs=jobs,
                          phantom_seed=phantom_seed)  # fmt: skip
        protocol = protocol_text(preset, exp.data, "hypodensity")
        report = _write_report(out, preset, exp.runs, exp.audit, progress.timings, protocol, progress.skipped)
    log(f"report: {report}  (total {sum(progress.timings.values()) / 60:.1f} min)")
    return report
