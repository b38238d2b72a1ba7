"""``mtlswin tune --pretrain``: SimMIM pretraining calibrated blind, by the rule of docs/tuning.md.

Swin only, on the demo phantom at spurious strength 0 (the cue independent of the label, so there is nothing to
learn but the marker), master seed :data:`~mtlswin.pipeline.tune.TUNE_PHANTOM_SEED` (draws 9000-9002), pretrained
on an unlabelled corpus of its own (master seed 99, as in docs/calibration.md). Five trials, one setting changed at a
time from the base (:data:`TRIALS`), fine-tuned with seed 0 and scored on the validation split; the one with the
highest validation AUC is then fine-tuned with seeds 0-2 beside training from scratch with the same seeds, and the
decision is whether it beats scratch on mean test-A AUC. Writes ``OUT/pretrain_trials.csv``,
``OUT/pretrain_compare.csv`` and ``OUT/pretrain.md``. Every stage is skipped when its output is there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from mtlswin.data.phantom import SynthConfig
from mtlswin.evaluation.learned import best_val_auc
from mtlswin.io import atomic_write_text
from mtlswin.models.checkpoint import ENCODER_NAME
from mtlswin.pipeline.configs import config_path
from mtlswin.pipeline.executors.base import train_missing
from mtlswin.pipeline.executors.choice import ExecutorChoice
from mtlswin.pipeline.executors.local import default_jobs
from mtlswin.pipeline.executors.work import available_cores, set_threads
from mtlswin.pipeline.experiment_data import draw_phantom, seed_data
from mtlswin.pipeline.presets import get_preset
from mtlswin.pipeline.run_state import run_evaluated
from mtlswin.pipeline.schedule import Schedule, TrainRun, build_schedule, run_name
from mtlswin.pipeline.stages import Progress, time_table
from mtlswin.pipeline.tune import TUNE_PHANTOM_SEED

__all__ = ["CORPUS_SEED", "TRIALS", "PretrainTrial", "tune_pretraining"]

CORPUS_SEED = 99  # the unlabelled corpus of docs/calibration.md: never a calibration or experiment draw
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class PretrainTrial:
    """One setting: fine-tuning ``lr`` and ``warmup`` steps, SimMIM ``mask_patch`` (px) and pretraining ``epochs``."""

    name: str
    lr: float = 5e-4
    warmup: int = 60
    mask_patch: int = 16
    epochs: int = 20

    @property
    def pretraining(self) -> str:
        """The pretraining run it needs (trials that change only the fine-tuning share one)."""
        return f"pretrain-p{self.mask_patch}-e{self.epochs}"

    def finetune_overrides(self, encoder: Path) -> list[str]:
        return [f"model.pretrained={encoder}", f"train.lr={self.lr}", f"train.warmup_steps={self.warmup}"]


TRIALS = (
    PretrainTrial("base"),
    PretrainTrial("lr1e-4", lr=1e-4),
    PretrainTrial("warmup300", warmup=300),
    PretrainTrial("patch8", mask_patch=8),
    PretrainTrial("epochs40", epochs=40),
)


def _corpus(out: Path, slices: int | None, jobs: int) -> Path:
    folder = out / "corpus"
    if not (folder / "manifest.csv").is_file():
        config = SynthConfig(preset="demo", slices=slices or 6000, size=128, seed=CORPUS_SEED)
        draw_phantom(folder, config, workers=jobs, progress=False)
    return folder / "manifest.csv"


def _pretrain_all(
    out: Path, trials: Sequence[PretrainTrial], corpus: Path, overrides: Sequence[str], jobs: int
) -> None:
    """The pretrainings of ``trials``, ``jobs`` at a time in worker processes of one thread each."""
    if len(trials) <= 1 or jobs <= 1:
        for trial in trials:
            _pretrain(out, trial, corpus, tuple(overrides))
        return
    with ProcessPoolExecutor(min(jobs, len(trials)), mp_context=get_context("spawn"), initializer=set_threads,
                             initargs=(max(1, available_cores() // jobs),)) as pool:  # fmt: skip
        longest_first = sorted(trials, key=lambda t: -t.epochs)  # the 40-epoch run does not end alone
        for future in [pool.submit(_pretrain, out, t, corpus, tuple(overrides)) for t in longest_first]:
            future.result()


def _pretrain(out: Path, trial: PretrainTrial, corpus: Path, overrides: Sequence[str]) -> Path:
    from mtlswin.pretrain.config import load_pretrain_config
    from mtlswin.pretrain.run import pretrain

    path = config_path(get_preset("demo"), "pretrain")
    config = load_pretrain_config(path, [f"data.inputs=[{corpus}]", f"pretrain.epochs={trial.epochs}",
                                         f"pretrain.mask_patch_size={trial.mask_patch}", f"output.dir={out}",
                                         f"output.name={trial.pretraining}", *overrides])  # fmt: skip
    return pretrain(config) / ENCODER_NAME


def _val_auc(run: Path) -> float:
    log = run / "logs" / "metrics.csv"
    auc = best_val_auc(pd.read_csv(log) if log.is_file() else None)
    return float("nan") if auc is None else auc


def _test_a_auc(run: Path) -> float:
    return float(json.loads((run / "metrics.json").read_text())["test_a"]["auc"])


def tune_pretraining(
    out: str | Path, jobs: int | None = None, log: Callable[[str], None] = print, overrides: Sequence[str] = (),
    pretrain_overrides: Sequence[str] = (), slices: int | None = None, corpus_slices: int | None = None,
    executor: ExecutorChoice | None = None,
) -> Path:  # fmt: skip
    """The calibration of the module docstring into ``out``; returns ``out/pretrain.md``. ``overrides`` apply to
    every fine-tuning run, ``pretrain_overrides`` to every pretraining (the tests shrink both; the calibration of
    docs/tuning.md uses neither)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress, jobs = Progress(log), jobs if jobs is not None else default_jobs(cpu_only=True)
    preset = get_preset("demo")
    data = seed_data(preset, out, None, SEEDS, slices, progress, log, 0.0, jobs, TUNE_PHANTOM_SEED)
    corpus = out / "corpus" / "manifest.csv"
    progress.stage(f"pretraining corpus (master seed {CORPUS_SEED})", corpus.is_file,
                   lambda: _corpus(out, corpus_slices, jobs))  # fmt: skip
    pretrainings = {t.pretraining: t for t in TRIALS}
    encoders = {name: out / "pretrain" / name / ENCODER_NAME for name in pretrainings}
    todo = [t for name, t in pretrainings.items() if not encoders[name].is_file()]
    progress.stage(f"pretrain {', '.join(pretrainings)}", lambda: all(e.is_file() for e in encoders.values()),
                   lambda: _pretrain_all(out / "pretrain", todo, corpus, pretrain_overrides, jobs))  # fmt: skip
    runs_dir = out / "runs"
    bases = build_schedule(preset, ["swin"], SEEDS, runs_dir, data, {k: ("val", "test_a") for k in SEEDS})
    base = {run.seed: run for run in bases.train}

    def finetune(trial: PretrainTrial, seed: int) -> TrainRun:
        folder = runs_dir / run_name(f"swin@{trial.name}", seed)
        return base[seed].extended([*trial.finetune_overrides(encoders[trial.pretraining]), *overrides], folder)

    trials = [finetune(t, 0) for t in TRIALS]
    _train(trials, out, jobs, progress, log, executor, "pretraining trials")
    table = pd.DataFrame.from_records([{"trial": t.name, "lr": t.lr, "warmup": t.warmup, "mask_patch": t.mask_patch,
                                        "pretrain_epochs": t.epochs, "val_auc": _val_auc(r.folder), "run": r.name}
                                       for t, r in zip(TRIALS, trials, strict=True)])  # fmt: skip
    atomic_write_text(out / "pretrain_trials.csv", table.to_csv(index=False))
    chosen = TRIALS[int(table["val_auc"].fillna(-1).to_numpy().argmax())]  # ties: the first (the base)
    compare = [finetune(chosen, k) for k in SEEDS] + [base[k].extended(overrides) for k in SEEDS]
    _train(compare, out, jobs, progress, log, executor, "comparison with training from scratch")
    rows = [{"init": f"SimMIM ({chosen.name})" if i < len(SEEDS) else "from scratch", "seed": r.seed,
             "val_auc": _val_auc(r.folder), "test_a_auc": _test_a_auc(r.folder), "run": r.name}
            for i, r in enumerate(compare)]  # fmt: skip
    comparison = pd.DataFrame.from_records(rows)
    atomic_write_text(out / "pretrain_compare.csv", comparison.to_csv(index=False))
    report = out / "pretrain.md"
    atomic_write_text(report, _markdown(table, chosen, comparison) + time_table(progress.timings, progress.skipped))
    log(f"tune --pretrain: {report}")
    return report


def _train(runs: list[TrainRun], out: Path, jobs: int, progress: Progress, log, executor, what: str) -> None:
    tag = f" [{what}]"
    train_missing(
        (executor or ExecutorChoice()).build(out, jobs, True, progress, tag, log), Schedule(tuple(runs)), progress, tag
    )
    for run in runs:
        progress.stage(f"evaluate {run.name}", lambda r=run: run_evaluated(r.folder, r.evaluate),
                       lambda r=run: _evaluate(r))  # fmt: skip


def _evaluate(run: TrainRun) -> None:
    from mtlswin.evaluation.evaluate import evaluate_run

    evaluate_run(run.folder, list(run.evaluate or ()))


def decision(comparison: pd.DataFrame) -> tuple[float, float, bool]:
    """Mean test-A AUC of the pretrained rows and of scratch, and whether pretraining beats scratch."""
    means = comparison.groupby(comparison["init"] == "from scratch")["test_a_auc"].mean()
    pretrained, scratch = float(means.loc[False]), float(means.loc[True])
    return pretrained, scratch, pretrained > scratch


def _markdown(table: pd.DataFrame, chosen: PretrainTrial, comparison: pd.DataFrame) -> str:
    pretrained, scratch, beats = decision(comparison)
    lines = ["# mtlswin tune --pretrain: SimMIM pretraining, calibrated blind (docs/tuning.md)", "",
             f"Swin, demo phantom at spurious strength 0, draws {1000 * TUNE_PHANTOM_SEED}-"
             f"{1000 * TUNE_PHANTOM_SEED + 2}; corpus: master seed {CORPUS_SEED}. Trials fine-tuned with seed 0, "
             "scored on the validation split.", "",
             "| trial | fine-tuning lr | warm-up steps | mask patch (px) | pretraining epochs | val AUC |",
             "|---|---|---|---|---|---|",
             *(f"| {r.trial} | {r.lr:g} | {r.warmup} | {r.mask_patch} | {r.pretrain_epochs} | {r.val_auc:.3f} |"
               for r in table.itertuples()),
             "", f"Selected (highest val AUC): **{chosen.name}**.", "",
             "| init | seed | val AUC | test-A AUC |", "|---|---|---|---|",
             *(f"| {r.init} | {r.seed} | {r.val_auc:.3f} | {r.test_a_auc:.3f} |" for r in comparison.itertuples()),
             "", f"Mean test-A AUC: pretrained {pretrained:.3f}, from scratch {scratch:.3f}. **Decision:** "
             + ("pretraining beats training from scratch." if beats else
                "no pretraining setting beats training from scratch; pretraining stays out of the presets."), ""]  # fmt: skip
    return "\n".join(lines) + "\n"
