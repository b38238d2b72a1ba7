"""The interface every executor has: it trains the runs of a :class:`~mtlswin.pipeline.schedule.Schedule`.

An executor trains each of ``schedule.train`` after the runs it ``needs`` that are in the schedule (a needed run
not in it is taken as done), raises on the first failure with the run's name, and returns a
:class:`RunResult` per run it trained. Which runs to train, and what to do with them afterwards (derive,
evaluate, audit), is the pipeline's business; where and how they train is the executor's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mtlswin.pipeline.schedule import Schedule
from mtlswin.pipeline.stages import Progress

__all__ = ["Executor", "RunFailed", "RunResult", "train_missing"]


@dataclass(frozen=True)
class RunResult:
    """What an executor reports of one trained run: the seconds its training took, and whether the executor also
    evaluated it on its ``TrainRun.evaluate`` splits (its ``metrics.json`` then has them)."""

    seconds: float
    evaluated: bool = False


class RunFailed(RuntimeError):
    """A run failed where its own log tells why (a Slurm job): the message names the run, where it ran, its log and
    the end of its stderr. ``reproduce`` writes it into the report's "Failed runs" before it stops."""


class Executor(Protocol):
    def run(self, schedule: Schedule) -> dict[str, RunResult]:
        """Train ``schedule.train`` (dependencies first); the result of each run by name."""
        ...


def train_missing(executor: Executor, schedule: Schedule, progress: Progress, tag: str = "") -> set[str]:
    """Train the runs of ``schedule`` that are not done with ``executor`` (a done one is listed as a finished stage,
    so a rerun shows it); the names of the runs its workers also evaluated."""
    done = {r.name for r in schedule.train if r.done()}
    for run in schedule.train:
        if run.name in done:
            progress.stage(f"train {run.name}{tag}", lambda: True, lambda: None)
    results = executor.run(schedule.without(done))
    return {name for name, result in results.items() if result.evaluated}
