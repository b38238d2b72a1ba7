"""Train independent runs side by side on a CPU: N worker processes with ``cores / N`` threads each.

The demo's models are small enough that PyTorch cannot keep two cores busy on one of them: measured
on 2 cores, a demo ``swin`` step takes 0.094 s with one thread and 0.094 s with two, an MTL step
0.219 s and 0.187 s. Two runs at one thread each therefore train about 1.8x as many steps per
second as one run at two threads. Runs wait for the runs they depend on (a Joint-Swin run for its
Swin-Unet). Workers are spawned (not forked: forking a process that already runs OpenMP threads can
deadlock) and kept for the whole schedule.

A task can carry its test splits (``TrainTask.evaluate``): its worker then evaluates the run as soon as it is
trained, in the same slot. The evaluations so fill the slots that runs waiting for a dependency or the last
run alone would leave idle, instead of running one after the other once every run is trained.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

__all__ = ["RunClock", "TrainTask", "default_jobs", "run_tasks", "train_config"]


@dataclass
class TrainTask:
    """One training run: its name, config file, overrides, the names of the runs it needs first, the
    digest of its resolved config (:func:`mtlswin.runs.config_digest`: what tells a finished run), and the
    splits to evaluate it on right after training (``None``: evaluated elsewhere, or not at all)."""

    name: str
    config: Path
    overrides: list[str]
    needs: list[str] = field(default_factory=list)
    digest: str | None = None
    evaluate: tuple[str, ...] | None = None


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
    import torch

    torch.set_num_threads(threads)


def train_config(config: Path, overrides: list[str]) -> float:
    """Train (or resume, when ``last.ckpt`` exists) the run of ``config`` + ``overrides``; returns seconds."""
    return _train_and_evaluate(config, overrides, None)[0]


def _train_and_evaluate(config: Path, overrides: list[str], splits: tuple[str, ...] | None) -> tuple[float, float]:
    """A worker's task: train (or resume) the run of ``config`` + ``overrides``, then (with ``splits``) evaluate it,
    from the config read once; seconds of each (:func:`train_config` is this without ``splits``)."""
    from mtlswin.config import load_config
    from mtlswin.training.train import train

    start = time.perf_counter()
    cfg = load_config(config, overrides)
    train(cfg, resume=(cfg.run_dir / "checkpoints" / "last.ckpt").is_file())
    seconds = time.perf_counter() - start
    if not splits:
        return seconds, 0.0
    from mtlswin.evaluation.evaluate import evaluate_run

    start = time.perf_counter()
    try:
        evaluate_run(cfg.run_dir, splits)
    except Exception as err:
        raise RuntimeError(f"trained, but evaluating it failed: {err}") from err
    return seconds, time.perf_counter() - start


def run_tasks(
    tasks: Sequence[TrainTask], jobs: int, log: Callable[[str], None] = print, quiet_overrides: Sequence[str] = ()
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
    running: dict[Future, TrainTask] = {}
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
