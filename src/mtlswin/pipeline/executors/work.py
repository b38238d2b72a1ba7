"""The work of one run, the same whichever executor runs it: train (or resume) it, then evaluate it.

:func:`train_and_evaluate` is what a local worker process and a Slurm job both call, so a run gives the same
metrics wherever it trains. It holds the run's lock (:func:`run_lock`) for the whole of it: run folders on a
shared file system may be reached from several nodes, and two workers must never train the same run at once.
The one that waited finds the run done and only evaluates it where its metrics are missing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from filelock import FileLock

from mtlswin.config import load_config
from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.pipeline.run_state import run_evaluated
from mtlswin.pipeline.schedule import TrainRun
from mtlswin.training.train import train

__all__ = ["available_cores", "check_finished", "run_lock", "set_threads", "train_and_evaluate", "train_config"]


def available_cores() -> int:
    """The cores this process may use: the Slurm job's ``SLURM_CPUS_PER_TASK`` inside a job, else every core."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(slurm) if slurm.isdigit() and int(slurm) > 0 else os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """PyTorch's intra-op threads of this process (a worker's share of :func:`available_cores`)."""
    torch.set_num_threads(max(1, threads))


def run_lock(folder: Path) -> FileLock:
    """The lock of the run folder ``folder``: ``<runs>/.<name>.lock`` beside it, not inside, so that a fresh run
    whose training fails leaves no folder behind (:func:`mtlswin.io.created_dir`). An fcntl lock: the kernel frees
    it when its holder dies (killed, preempted), so a requeued job never waits for its own dead predecessor."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(folder.parent / f".{folder.name}.lock")


def train_config(config: Path, overrides: Sequence[str]) -> float:
    """Train (or resume, when ``last.ckpt`` exists) the run of ``config`` + ``overrides``; returns seconds."""
    start = time.perf_counter()
    cfg = load_config(config, list(overrides))
    train(cfg, resume=(cfg.run_dir / "checkpoints" / "last.ckpt").is_file())
    return time.perf_counter() - start


def train_and_evaluate(run: TrainRun, extra_overrides: Sequence[str] = ()) -> tuple[float, float]:
    """Under the run's lock: train (or resume) ``run`` unless it is done, then evaluate it on ``run.evaluate``
    where its metrics lack a split; the seconds of each (0.0 for what was not needed).

    ``extra_overrides`` are added after the run's own (e.g. no progress bar; they change no number).
    """
    with run_lock(run.folder):
        trained = 0.0
        if not run.done():
            trained = train_config(run.config, [*run.overrides, *extra_overrides])
        if not run.evaluate or (not trained and run_evaluated(run.folder, run.evaluate)):
            return trained, 0.0
        start = time.perf_counter()
        try:
            evaluate_run(run.folder, run.evaluate)
        except Exception as err:
            raise RuntimeError(f"trained, but evaluating it failed: {err}") from err
        return trained, time.perf_counter() - start


def check_finished(runs: Sequence[TrainRun]) -> None:
    """After an executor reports ``runs`` done: each has its model, and its metrics where it names splits; a
    ``RuntimeError`` naming the first that has not."""
    for run in runs:
        if not run.done():
            raise RuntimeError(f"training {run.name} finished but wrote no model.safetensors")
        if run.evaluate and not run_evaluated(run.folder, run.evaluate):
            raise RuntimeError(f"evaluating {run.name} finished but its metrics.json lacks a split of {run.evaluate}")
