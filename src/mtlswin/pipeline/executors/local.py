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

With a GPU preset and ``--runs-per-gpu N`` the slots are N per visible GPU: the workers of a GPU see it alone
(``CUDA_VISIBLE_DEVICES``), so N small runs share each GPU (:func:`plan_slots`). The work of a run is
:func:`mtlswin.pipeline.executors.work.train_and_evaluate`, the same as in a Slurm job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing import get_context

import torch

from mtlswin.pipeline.executors.base import RunResult
from mtlswin.pipeline.executors.work import (
    available_cores,
    check_finished,
    run_lock,
    set_threads,
    train_and_evaluate,
    train_config,
)
from mtlswin.pipeline.schedule import Schedule, TrainRun
from mtlswin.pipeline.stages import Progress

__all__ = ["LocalExecutor", "RunClock", "Slots", "default_jobs", "plan_slots", "run_tasks", "visible_gpus"]

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


@dataclass(frozen=True)
class Slots:
    """Where the runs of a schedule train side by side: ``groups`` of (device, runs at once). A device is a GPU id
    that the group's workers see alone (``CUDA_VISIBLE_DEVICES``), or None: whatever this process sees."""

    groups: tuple[tuple[str | None, int], ...]

    @property
    def total(self) -> int:
        return sum(n for _, n in self.groups)


def visible_gpus() -> list[str]:
    """The ids of the GPUs this process may use (``CUDA_VISIBLE_DEVICES`` where it is set)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    return [str(k) for k in range(torch.cuda.device_count())]


def plan_slots(jobs: int, runs_per_gpu: int | None = None, gpus: Sequence[str] = ()) -> Slots:
    """The slots of a schedule: ``runs_per_gpu`` runs at a time on each of ``gpus``; without it (or without a GPU:
    the CPU presets), ``jobs`` runs at a time on what the process sees."""
    if runs_per_gpu is not None and runs_per_gpu < 1:
        raise ValueError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}")
    if runs_per_gpu is None or not gpus:
        return Slots(((None, max(1, jobs)),))
    return Slots(tuple((gpu, runs_per_gpu) for gpu in gpus))


def _init_worker(threads: int, device: str | None) -> None:
    if device is not None:  # before CUDA starts in this process: the worker sees its GPU alone
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    set_threads(threads)


def run_tasks(
    tasks: Sequence[TrainRun], slots: Slots | int, log: Callable[[str], None] = print,
    quiet_overrides: Sequence[str] = (), work: Callable[..., tuple[float, float]] = train_and_evaluate,
) -> dict[str, float]:  # fmt: skip
    """Train ``tasks`` in ``slots`` (an int: that many on what this process sees), dependencies first, each evaluated
    right after training where the task names its splits (``work``: :func:`train_and_evaluate`, whose signature a
    test's stand-in takes); returns seconds per run (training only).

    ``quiet_overrides`` are added to every run (e.g. no progress bar: several runs share one terminal).
    The first failure stops the schedule and is raised with the run's name.
    """
    slots = plan_slots(slots) if isinstance(slots, int) else slots
    names = {t.name for t in tasks}
    pending = list(tasks)
    done: set[str] = set()
    seconds: dict[str, float] = {}
    total = slots.total
    threads = max(1, available_cores() // total)
    running: dict[Future, tuple[TrainRun, int]] = {}
    clock = RunClock(len(tasks), total)
    with ExitStack() as stack:
        pools = [stack.enter_context(ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_init_worker,
                                                         initargs=(threads, device)))
                 for device, n in slots.groups]  # fmt: skip
        while pending or running:
            ready = [t for t in pending if all(n in done or n not in names for n in t.needs)]
            for task in ready:
                busy = [sum(g == k for _, g in running.values()) for k in range(len(pools))]
                free = [k for k, (_, n) in enumerate(slots.groups) if busy[k] < n]
                if not free:
                    break
                group = free[0]
                pending.remove(task)
                device = slots.groups[group][0]
                where = "" if device is None else f", GPU {device}"
                log(
                    f"train {task.name}: started ({len(running) + 1} of {total} slots, {threads} thread(s) each{where})"
                )
                running[pools[group].submit(work, task, tuple(quiet_overrides))] = (task, group)
            if not running:
                raise RuntimeError(f"runs {[t.name for t in pending]} wait for runs that never finish")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task, _ = running.pop(future)
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
    """Trains a schedule on this machine in ``slots`` (default: ``jobs`` runs at a time; see the module's docstring).

    ``progress`` times the work (one stage per run with one slot; one line for all with several, named after
    ``tag``, the sub-experiment); ``log`` prints a line per event.
    """

    def __init__(
        self, jobs: int, progress: Progress, tag: str = "", log: Callable[[str], None] = print,
        slots: Slots | None = None,
    ) -> None:  # fmt: skip
        self.slots = slots if slots is not None else plan_slots(jobs)
        self.progress, self.tag, self.log = progress, tag, log

    def run(self, schedule: Schedule) -> dict[str, RunResult]:
        """Train ``schedule.train`` (dependencies first); with several slots, each run is evaluated by its worker."""
        runs = schedule.train
        if self.slots.total <= 1 or len(runs) <= 1:
            return self._one_at_a_time(runs)
        return self._side_by_side(runs)

    def _one_at_a_time(self, runs: Sequence[TrainRun]) -> dict[str, RunResult]:
        clock = RunClock(len(runs))
        results = {}
        for run in runs:
            stage = f"train {run.name}{self.tag}"
            self.progress.stage(stage, run.done, lambda r=run: _train_locked(r))
            results[run.name] = RunResult(self.progress.timings[stage])
            self.log(f"training: {clock.finished(self.progress.timings[stage])}{self.tag}")
        return results

    def _side_by_side(self, runs: Sequence[TrainRun]) -> dict[str, RunResult]:
        start = time.perf_counter()
        seconds = run_tasks(runs, self.slots, log=lambda m: self.log(f"{m}{self.tag}"), quiet_overrides=QUIET)
        check_finished(runs)
        what = "train and evaluate" if any(r.evaluate for r in runs) else "train"
        at_once = f"{self.slots.total} at a time"
        self.progress.timings[f"{what} {len(runs)} runs, {at_once}{self.tag}"] = time.perf_counter() - start
        return {r.name: RunResult(seconds[r.name], evaluated=bool(r.evaluate)) for r in runs}


def _train_locked(run: TrainRun) -> float:
    """Train ``run`` in this process, holding its lock (:func:`mtlswin.pipeline.executors.work.run_lock`)."""
    with run_lock(run.folder):
        return train_config(run.config, list(run.overrides))
