"""Which executor trains the runs: ``--executor local|slurm`` with its options, as one value the pipeline carries.

:class:`ExecutorChoice` is made by the command line (``--executor``, ``--runs-per-gpu``, ``--slurm KEY=VALUE``) and
handed through :func:`mtlswin.pipeline.reproduce.reproduce` (and ``--until-decided``) to each experiment, which
builds its executor with :meth:`ExecutorChoice.build`. The default is the local executor as it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlswin.pipeline.executors.base import Executor
from mtlswin.pipeline.executors.local import LocalExecutor, plan_slots, visible_gpus
from mtlswin.pipeline.executors.slurm import SlurmExecutor, check_submission
from mtlswin.pipeline.stages import Progress

__all__ = ["EXECUTORS", "ExecutorChoice"]

EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class ExecutorChoice:
    """``kind``: local or slurm; ``runs_per_gpu``: runs sharing a GPU (local: per visible GPU, and with no GPU
    visible the ``--jobs`` slots; slurm: runs per job; None: local as before, one run per Slurm job); ``slurm``:
    the ``--slurm`` options."""

    kind: str = "local"
    runs_per_gpu: int | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"unknown executor {self.kind!r}; choose one of {', '.join(EXECUTORS)}")
        if self.runs_per_gpu is not None and self.runs_per_gpu < 1:
            raise ValueError(f"--runs-per-gpu must be at least 1, got {self.runs_per_gpu}")
        if self.slurm and self.kind != "slurm":
            raise ValueError("--slurm options need --executor slurm")

    def check(self, cpu_only: bool) -> None:
        """Before anything is written: with Slurm, whether sbatch takes a job with these options."""
        if self.kind == "slurm":
            check_submission(self.slurm_options(cpu_only))

    def slurm_options(self, cpu_only: bool) -> dict[str, Any]:
        """The ``--slurm`` options with the defaults: a GPU per job for the GPU presets, a core per run on a CPU
        and four per run beside a GPU."""
        per_job = self.runs_per_gpu or 1
        options = {"gpus_per_node": 0 if cpu_only else 1, "cpus_per_task": per_job * (1 if cpu_only else 4)}
        return {**options, **self.slurm}

    def build(
        self, out: Path, jobs: int, cpu_only: bool, progress: Progress, tag: str = "",
        log: Callable[[str], None] = print,
    ) -> Executor:  # fmt: skip
        """The executor of one experiment under ``out`` (Slurm's job folders and logs in ``out/slurm``)."""
        if self.kind == "slurm":
            return SlurmExecutor(
                out / "slurm", self.slurm_options(cpu_only), self.runs_per_gpu or 1, progress, tag, log
            )
        gpus = [] if self.runs_per_gpu is None else visible_gpus()  # asked for: any preset (the demo on a GPU)
        return LocalExecutor(jobs, progress, tag, log, slots=plan_slots(jobs, self.runs_per_gpu, gpus))
