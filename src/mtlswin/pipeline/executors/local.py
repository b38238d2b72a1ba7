"""The local executor: a schedule's runs on this machine, one after the other or side by side.

With one slot (``jobs`` 1, or a single run) the runs train in this process, one stage each. With several,
N worker processes train N runs at a time with ``cores / N`` threads each: the demo's models are small
enough that PyTorch cannot keep two cores busy on one of them (a step takes about as long on two threads as on
one), so runs at one thread each side by side train more steps per second than one run on every thread.
Runs wait for the runs they depend on (a Joint-Swin run for its Swin-Unet). Workers are spawned (not forked:
forking a process that already runs OpenMP threads can deadlock) and kept for the whole schedule.

A run can carry its test splits (``TrainRun.evaluate``): in a worker it is then evaluated as soon as it is
trained, in the same slot. The evaluations so fill the slots that runs waiting for a dependency or the last
run alone would leave idle, instead of running one after the other once every run is trained.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import torch

from mtlswin.config import load_config
from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.pipeline.executors.base import RunResult
from mtlswin.pipeline.run_state import run_evaluated
from mtlswin.pipeline.schedule import Schedule, TrainRun
from mtlswin.pipeline.stages import Progress
from mtlswin.training.train import train

__all__ = ["LocalExecutor", "RunClock", "default_jobs", "run_tasks", "train_config"]

# Several runs share the terminal: no per-run progress bars or model summaries, one line per event.
QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")


class RunClock:
    """Overall progress of a schedule of runs: ``k of n runs done, about M min left``.

    The time left is the mean duration of the finished runs times the runs not yet finished, divided by the
    runs trained side by side (``jobs``): a rough estimate, since rows differ in cost.
    """

    def __init__(self, total: int, jobs: int = 1) -> None:
        self.total, self.jobs, self.durations = total, max(1, jobs), []

    def finished(self, seconds: float) -> str:
        """Count one finished run that took ``seconds``; the progress line."""
        self.durations.append(seconds)
        done = len(self.durations)
        left = sum(self.durations) / done * (self.total - done) / min(self.jobs, max(1, self.total - done))
        tail = f", about {left / 60:.1f} min left" if done < self.total else ""
        return f"{done} of {self.total} runs done{tail}"


def default_jobs(cpu_only: bool) -> int:
    """Parallel runs: one per core (at most 4) for CPU presets; a GPU preset trains one run at a time."""
    if not cpu_only:
        return 1
    return max(1, min(4, (os.cpu_count() or 1)))


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def train_config(config: Path, overrides: list[str]) -> float:
    """Train (or resume, when ``last.ckpt`` exists) the run of ``config`` + ``overrides``; returns seconds."""
    return _train_and_evaluate(config, overrides, None)[0]


def _train_and_evaluate(config: Path, overrides: list[str], splits: tuple[str, ...] | None) -> tuple[float, float]:
    """A worker's task: train (or resume) the run of ``config`` + ``overrides``, then (with ``splits``) evaluate it,
    from the config read once; seconds of each (:func:`train_config` is this without ``splits``)."""
    start = time.perf_counter()
    cfg = load_config(config, overrides)
    train(cfg, resume=(cfg.run_dir / "checkpoints" / "last.ckpt").is_file())
    seconds = time.perf_counter() - start
    if not splits:
        return seconds, 0.0
    start = time.perf_counter()
    try:
        evaluate_run(cfg.run_dir, splits)
    except Exception as err:
        raise RuntimeError(f"trained, but evaluating it failed: {err}") from err
    return seconds, time.perf_counter() - start


def run_tasks(
    tasks: Sequence[TrainRun], jobs: int, log: Callable[[str], None] = print, quiet_overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Train ``tasks`` with ``jobs`` processes (dependencies first), each evaluated right after training where
    the task names its splits; returns seconds per run (training only).

    ``quiet_overrides`` are added to every run (e.g. no progress bar: several runs share one terminal).
    The first failure stops the schedule and is raised with the run's name.
    """
    names = {t.name for t in tasks}
    pending = list(tasks)
    done: set[str] = set()
    seconds: dict[str, float] = {}
    threads = max(1, (os.cpu_count() or 1) // jobs)
    running: dict[Future, TrainRun] = {}
    clock = RunClock(len(tasks), jobs)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,)) as pool:  # fmt: skip
        while pending or running:
            ready = [t for t in pending if all(n in done or n not in names for n in t.needs)]
            for task in ready[: jobs - len(running)]:
                pending.remove(task)
                log(f"train {task.name}: started ({len(running) + 1} of {jobs} slots, {threads} thread(s) each)")
                overrides = [*task.overrides, *quiet_overrides]
                running[pool.submit(_train_and_evaluate, task.config, overrides, task.evaluate)] = task
            if not running:
                raise RuntimeError(f"runs {[t.name for t in pending]} wait for runs that never finish")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                try:
                    seconds[task.name], evaluated = future.result()
                except BaseException as err:
                    for other in running:
                        other.cancel()
                    raise RuntimeError(f"training {task.name} failed: {err}") from err
                done.add(task.name)
                tail = f", evaluated in {evaluated:.1f} s" if task.evaluate else ""
                progress = clock.finished(seconds[task.name] + evaluated)
                log(f"train {task.name}: done in {seconds[task.name]:.1f} s{tail} ({progress})")
    return seconds


class LocalExecutor:
    """Trains a schedule on this machine, ``jobs`` runs at a time (see the module's docstring).

    ``progress`` times the work (one stage per run with one slot; one line for all with several, named after
    ``tag``, the sub-experiment); ``log`` prints a line per event.
    """

    def __init__(self, jobs: int, progress: Progress, tag: str = "", log: Callable[[str], None] = print) -> None:
        self.jobs, self.progress, self.tag, self.log = jobs, progress, tag, log

    def run(self, schedule: Schedule) -> dict[str, RunResult]:
        """Train ``schedule.train`` (dependencies first); with several slots, each run is evaluated by its worker."""
        runs = schedule.train
        if self.jobs <= 1 or len(runs) <= 1:
            return self._one_at_a_time(runs)
        return self._side_by_side(runs)

    def _one_at_a_time(self, runs: Sequence[TrainRun]) -> dict[str, RunResult]:
        clock = RunClock(len(runs))
        results = {}
        for run in runs:
            stage = f"train {run.name}{self.tag}"
            self.progress.stage(stage, run.done, lambda r=run: train_config(r.config, list(r.overrides)))
            results[run.name] = RunResult(self.progress.timings[stage])
            self.log(f"training: {clock.finished(self.progress.timings[stage])}{self.tag}")
        return results

    def _side_by_side(self, runs: Sequence[TrainRun]) -> dict[str, RunResult]:
        start = time.perf_counter()
        seconds = run_tasks(runs, self.jobs, log=lambda m: self.log(f"{m}{self.tag}"), quiet_overrides=QUIET)
        for run in runs:
            if not run.done():
                raise RuntimeError(f"training {run.name} finished but wrote no model.safetensors")
            if run.evaluate and not run_evaluated(run.folder, run.evaluate):
                raise RuntimeError(
                    f"evaluating {run.name} finished but its metrics.json lacks a split of {run.evaluate}"
                )
        what = "train and evaluate" if any(r.evaluate for r in runs) else "train"
        self.progress.timings[f"{what} {len(runs)} runs, {self.jobs} at a time{self.tag}"] = time.perf_counter() - start
        return {r.name: RunResult(seconds[r.name], evaluated=bool(r.evaluate)) for r in runs}
