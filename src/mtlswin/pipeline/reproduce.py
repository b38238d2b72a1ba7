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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mtlswin.paper_table import PAPER_TABLE1_MD
from mtlswin.pipeline.parallel import RunClock, TrainTask, default_jobs, run_tasks, train_config
from mtlswin.pipeline.presets import AUXILIARY_ROWS, SEGMENTATION_RUN_FOR, Preset, get_preset, ordered_rows

AUDIT_SPLIT = "test_a"
EVAL_SPLITS = ("test_a", "test_b")


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


@dataclass
class Progress:
    """Prints one line per stage: ``[k] stage ... done in 12.3 s`` or ``... skipped (valid output exists)``."""

    log: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str, done: Callable[[], bool], action: Callable[[], object]) -> None:
        k = len(self.timings) + 1
        if done():
            self.log(f"[{k}] {name}: skipped (valid output exists)")
            self.timings[name] = 0.0
            return
        self.log(f"[{k}] {name}: running")
        start = time.perf_counter()
        action()
        self.timings[name] = time.perf_counter() - start
        if not done():
            raise RuntimeError(f"stage {name!r} finished but its output is not valid; see the messages above")
        self.log(f"[{k}] {name}: done in {self.timings[name]:.1f} s")


def draw_seed(phantom_seed: int, training_seed: int) -> int:
    """The phantom seed of training seed k's draw under the master ``phantom_seed`` M: ``1000 * M + k``
    (M = 0 gives draws 0, 1, 2 for the demo's seeds; another M gives draws that share none of them)."""
    if not 0 <= training_seed < 1000:
        raise ValueError(f"one phantom draw per seed needs seeds in 0..999, got {training_seed}")
    return 1000 * phantom_seed + training_seed


def _synth(
    out: Path, preset: Preset, slices: int | None, seed: int, spurious: float | None = None, workers: int = 1
) -> None:
    from mtlswin.data.phantom import SynthConfig, write_dataset

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    options = dict(preset.phantom_options)
    if slices is not None:
        options["slices"] = slices
    if spurious is not None:
        options["spurious"] = spurious
    write_dataset(SynthConfig(preset=preset.phantom, seed=seed, **options), tmp, progress=True, workers=workers)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)  # a phantom interrupted while being written is never used


def _manifest_ok(manifest: Path) -> bool:
    return manifest.is_file() and (manifest.parent / "phantom.json").is_file()


def _splits_ok(manifest: Path, splits: Path, target: str) -> bool:
    from mtlswin.data.manifest import read_manifest
    from mtlswin.data.splits import check_splits, read_splits

    if not splits.is_file():
        return False
    table = read_manifest(manifest, target, check_files=False).table
    try:
        check_splits(table, read_splits(splits, table))
    except ValueError:
        return False
    return True


def _make_splits(
    manifest: Path, splits: Path, target: str, seed: int, log: Callable[[str], None], options: dict | None = None
) -> None:
    from mtlswin.data.manifest import read_manifest
    from mtlswin.data.splits import make_splits, split_table, split_warnings, write_splits

    table = read_manifest(manifest, target, check_files=False).table  # files are checked by the data module
    parts = make_splits(table, target=target, protocol="paper", seed=seed, **(options or {}))
    write_splits(parts, splits)
    log(split_table(table, parts, target))
    for line in split_warnings(table, parts, target):
        log(line)


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


def _evaluated(run: Path) -> bool:
    path = run / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return False
    return isinstance(metrics, dict) and all(isinstance(metrics.get(s), dict) for s in EVAL_SPLITS)


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


def _split_has_masks(manifest: Path, splits: Path, split: str) -> bool:
    import pandas as pd

    table = pd.read_csv(manifest, dtype={"mask": str}, keep_default_na=False)
    rows = pd.read_csv(splits)
    chosen = table.iloc[rows.loc[rows["split"] == split, "index"].to_numpy()]
    return bool((chosen["mask"].astype(str).str.strip() != "").any())


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


def _claims(out: Path, runs: list[Path], audit: Path) -> None:
    from mtlswin.io import atomic_path, atomic_write_text
    from mtlswin.pipeline.claims import claims_markdown, evaluate_claims, load_evidence

    table = evaluate_claims(load_evidence(runs, audit / "audit_slices.csv"), n_resamples=CLAIM_RESAMPLES)
    atomic_write_text(out / "claims.md", claims_markdown(table, CLAIM_RESAMPLES))
    with atomic_path(out / "claims.csv") as tmp:  # last: its presence marks the stage done
        table.to_csv(tmp, index=False)


def _protocol_text(preset: Preset, data: dict[int, SeedData], target: str) -> str:
    """What the test sets hold (slices, positives, patients) and how the splits depart from the paper's."""
    from mtlswin.data.manifest import read_manifest
    from mtlswin.data.splits import read_splits, split_table

    tables = {}
    for seed, part in data.items():
        table = read_manifest(part.manifest, target, check_files=False).table
        tables[seed] = split_table(table, read_splits(part.splits, table), target)
    first = next(iter(tables))
    lines = ["## Data and splits", ""]
    if len(set(data.values())) > 1:
        lines += ["Each training seed has a phantom draw of its own: seed k's rows train and are tested on draw k "
                  "(the rows of one draw share it, so their differences stay paired). A verdict therefore speaks for "
                  "the method on the phantom, not for one data set.", ""]  # fmt: skip
        for seed, text in tables.items():
            lines += [f"Seed {seed} (`{data[seed].manifest.parent.parent.name}`):", "", "```", text, "```", ""]
    else:
        lines += ["```", tables[first], "```", ""]
    opts = preset.split_options
    if opts.get("test_a_fraction") not in (None, 0.1):
        lines.append(f"- Test A is {opts['test_a_fraction']:.0%} of hospital 1 (the paper: 10%), for enough positives.")
    if opts.get("test_b_size") == "all":
        lines.append("- Test B is every slice of hospitals 5-11 at their own positive rate (the paper: a sample of "
                     "test A's size and positive rate), for enough positives and patients.")  # fmt: skip
    if preset.phantom_options.get("twin_hospitals"):
        lines.append("- Every test slice has a counterfactual twin (the same slice with the spurious cue flipped, "
                     "all else identical): the cue sensitivity below is measured on them.")  # fmt: skip
    return "\n".join(lines) + "\n"


def _write_report(
    out: Path, preset: Preset, runs: list[Path], audit: Path, timings: dict[str, float], protocol: str = ""
) -> Path:
    from mtlswin.io import atomic_write_text
    from mtlswin.training.report import write_report

    report = write_report(runs, out, audit=audit if (audit / "audit.md").is_file() else None)
    total = sum(timings.values())
    text = report.read_text()
    head = (
        f"# mtlswin reproduce: preset `{preset.name}`\n\n{preset.description}.\n\n"
        "Test A = slices of hospital 1 (where the spurious cue holds in training); test B = hospitals 5-11 "
        "(covariate shift, cue independent of the label). F1 = macro F1.\n\n"
    )
    if preset.config_dir == "demo":
        head += DEMO_RECIPE_NOTE
    head += protocol
    if (out / "claims.md").is_file():
        head += "\n## The paper's claims, tested\n\n" + (out / "claims.md").read_text() + "\n"
    text = text.replace("# Results (Table 1 layout)", head + "## Results (Table 1 layout)", 1)
    text += (
        "\n## The paper's Table 1, for orientation\n\n"
        "These are the numbers the paper reports on its private CT data at full size (224 px, 600 epochs, "
        "ImageNet-initialised encoders). The table above comes from different data (here: "
        f"{'the synthetic phantom' if preset.phantom else 'your manifest'}) and, for the demo presets, "
        "from tiny models trained for minutes on a CPU, so the two are not comparable number for number; "
        "compare the ordering of the rows, not the values.\n\n" + PAPER_TABLE1_MD
    )
    text += "\n## Time per stage\n\n| stage | seconds |\n|---|---|\n"
    text += "".join(f"| {k} | {v:.1f} |\n" for k, v in timings.items()) + f"| total | {total:.1f} |\n"
    atomic_write_text(report, text)
    return report


DEMO_RECIPE_NOTE = (
    "**Recipe.** The paper fine-tunes ImageNet-initialised encoders with SGD (momentum 0.9, poly decay). No "
    "ImageNet weights can be had offline, and from scratch that recipe leaves a Swin at chance on this data "
    "(measured: SGD 0.05 for 300 steps, val AUC 0.41-0.55; a linear probe on the same pixels reaches 0.9). The "
    "demo therefore trains every row from scratch with one recipe: input standardised with the train split's "
    "mean and std (saved in the model), AdamW 5e-4, 60 warm-up steps, cosine decay, no drop path, batch 32. "
    "The `paper` configs keep the paper's recipe.\n\n"
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

    @property
    def manifest(self) -> Path:
        """The first seed's manifest (every seed's, unless each has a phantom draw of its own)."""
        return next(iter(self.data.values())).manifest


def _train_runs(
    tasks: list[TrainTask], runs_dir: Path, jobs: int, progress: Progress, tag: str, log: Callable[[str], None]
) -> None:
    """Train every task whose run is not done: one after the other, or ``jobs`` at a time on the CPU."""
    todo = [t for t in tasks if not _run_ok(runs_dir / t.name, t.digest)]
    for task in tasks:
        if task not in todo:
            progress.stage(f"train {task.name}{tag}", lambda: True, lambda: None)
    if jobs <= 1 or len(todo) <= 1:
        clock = RunClock(len(todo))
        for task in todo:
            progress.stage(f"train {task.name}{tag}", lambda t=task: _run_ok(runs_dir / t.name, t.digest),
                           lambda t=task: train_config(t.config, t.overrides))  # fmt: skip
            log(f"training: {clock.finished()}{tag}")
        return
    # several runs share the terminal: no per-run progress bars or model summaries, one line per event
    quiet = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    start = time.perf_counter()
    run_tasks(todo, jobs, log=lambda m: log(f"{m}{tag}"), quiet_overrides=quiet)  # logs each run's own time
    for task in todo:
        if not _run_ok(runs_dir / task.name, task.digest):
            raise RuntimeError(f"training {task.name} finished but wrote no model.safetensors")
    progress.timings[f"train {len(todo)} runs, {jobs} at a time{tag}"] = time.perf_counter() - start


@dataclass(frozen=True)
class SeedData:
    """The data the runs of one training seed use: manifest, splits and image cache."""

    manifest: Path
    splits: Path
    cache: Path


def _phantom_data(
    preset: Preset, folder: Path, seed: int, slices: int | None, spurious: float | None, progress: Progress,
    log: Callable[[str], None], name: str, jobs: int,
) -> SeedData:  # fmt: skip
    """Write (or find) one phantom draw and its splits under ``folder``."""
    data_dir = folder / "phantom"
    manifest = data_dir / "manifest.csv"
    progress.stage(f"data ({name})", lambda: _manifest_ok(manifest),
                   lambda: _synth(data_dir, preset, slices, seed, spurious, workers=jobs))  # fmt: skip
    return _with_splits(preset, manifest, folder, progress, log, name)


def _with_splits(
    preset: Preset, manifest: Path, folder: Path, progress: Progress, log: Callable[[str], None], name: str
) -> SeedData:
    target, splits = "hypodensity", folder / "splits.csv"
    progress.stage(f"splits ({name})", lambda: _splits_ok(manifest, splits, target),
                   lambda: _make_splits(manifest, splits, target, 0, log, preset.split_options))  # fmt: skip
    return SeedData(manifest, splits, folder / "cache")


def _seed_data(
    preset: Preset, out: Path, manifest: str | Path | None, seeds: tuple[int, ...], slices: int | None,
    progress: Progress, log: Callable[[str], None], spurious: float | None, jobs: int, phantom_seed: int,
) -> dict[int, SeedData]:  # fmt: skip
    """Each training seed's data: the user's manifest (shared), one phantom, or one phantom draw per seed."""
    tag = "" if spurious is None else f", spurious {spurious:g}"
    if manifest is not None:
        manifest_path = Path(manifest).resolve()
        if not manifest_path.is_file():
            raise FileNotFoundError(f"--manifest {manifest_path} does not exist")
        shared = _with_splits(preset, manifest_path, out, progress, log, f"your manifest{tag}")
        return dict.fromkeys(seeds, shared)
    if preset.phantom is None:
        raise ValueError(f"preset {preset.name!r} needs --manifest (it generates no phantom)")
    if not preset.draw_per_seed:
        shared = _phantom_data(preset, out, phantom_seed, slices, spurious, progress, log, f"phantom{tag}", jobs)
        return dict.fromkeys(seeds, shared)
    return {k: _phantom_data(preset, out / "data" / f"seed-{k}", draw_seed(phantom_seed, k), slices, spurious,
                             progress, log, f"phantom draw {draw_seed(phantom_seed, k)} for seed {k}{tag}", jobs)
            for k in seeds}  # fmt: skip


def _experiment(
    preset: Preset, out: Path, manifest: str | Path | None, seeds: tuple[int, ...], rows: Sequence[str] | None,
    overrides: Sequence[str], slices: int | None, progress: Progress, log: Callable[[str], None],
    spurious: float | None = None, jobs: int = 1, phantom_seed: int = 0,
) -> Experiment:  # fmt: skip
    """Data, splits, training, evaluation, audit and claims of one experiment under ``out``."""
    tag = "" if spurious is None else f" [spurious {spurious:g}]"
    data = _seed_data(preset, out, manifest, seeds, slices, progress, log, spurious, jobs, phantom_seed)
    runs_dir = out / "runs"
    row_list = ordered_rows(tuple(rows) if rows is not None else preset.rows)
    runs: list[Path] = []
    tasks: list[TrainTask] = []
    for seed in seeds:
        for row in row_list:
            run = runs_dir / f"{row}-seed{seed}"
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
            tasks.append(TrainTask(run.name, config_path(preset, row), cfg, needs, digest))
            if row not in AUXILIARY_ROWS:
                runs.append(run)
    _train_runs(tasks, runs_dir, jobs, progress, tag, log)
    from mtlswin.training.evaluate import evaluate_run

    for run in runs:
        progress.stage(f"evaluate {run.name}{tag}", lambda run=run: _evaluated(run),
                       lambda run=run: evaluate_run(run, EVAL_SPLITS))  # fmt: skip

    audit = out / "audit"
    classifiers = [r for r in runs if _has_logits(r)]  # seed-major: the first seed's runs come first
    n_grid = sum(r.name.endswith(f"-seed{seeds[0]}") for r in classifiers)
    first = data[seeds[0]]
    if classifiers and not _split_has_masks(first.manifest, first.splits, AUDIT_SPLIT):
        log(f"audit: skipped ({AUDIT_SPLIT} has no slice with a hematoma mask)")
    elif classifiers:
        progress.stage(f"audit{tag}", lambda: _audit_ok(audit, classifiers), lambda: _audit(audit, classifiers, n_grid))
    if classifiers:
        progress.stage(f"claims{tag}", lambda: _claims_ok(out, runs), lambda: _claims(out, runs, audit))
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
            _write_report(sub, preset, exp.runs, exp.audit, {}, _protocol_text(preset, exp.data, "hypodensity"))
            experiments[strength] = exp
        report = write_sweep_report(out, preset, experiments, progress.timings)
    else:
        exp = _experiment(preset, out, manifest, seeds, rows, overrides, slices, progress, log, jobs=jobs,
                          phantom_seed=phantom_seed)  # fmt: skip
        protocol = _protocol_text(preset, exp.data, "hypodensity")
        report = _write_report(out, preset, exp.runs, exp.audit, progress.timings, protocol)
    log(f"report: {report}  (total {sum(progress.timings.values()) / 60:.1f} min)")
    return report
