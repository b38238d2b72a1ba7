"""Stand-ins of the executors' tests: a work function that records how many runs go at once (run in spawned
workers, so it lives in an importable module), and a fake submitit executor and job."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mtlswin.pipeline.schedule import TrainRun


def recording_work(run: TrainRun, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """Marks ``run`` as running on the GPU it sees (``CUDA_VISIBLE_DEVICES``) beside its folder, writes how many
    runs ran on that GPU and in all when it started, and whether the runs it needs had finished."""
    scratch = run.folder.parent
    device = os.environ.get("CUDA_VISIBLE_DEVICES", "none")
    me = scratch / f"running-{device}-{run.name}"
    me.touch()
    on_device = len(list(scratch.glob(f"running-{device}-*")))
    in_all = len(list(scratch.glob("running-*")))
    needs_done = all((scratch / f"finished-{n}").exists() for n in run.needs)
    (scratch / f"seen-{run.name}").write_text(f"{device} {on_device} {in_all} {needs_done}")
    time.sleep(0.3)
    me.unlink()
    (scratch / f"finished-{run.name}").touch()
    return 0.1, 0.0


class FakePaths:
    def __init__(self, stderr: Path) -> None:
        self.stderr = stderr


class FakeJob:
    def __init__(self, job_id: str, folder: Path, result: dict | None, error: str | None = None) -> None:
        self.job_id, self._result, self._error = job_id, result, error
        self.paths = FakePaths(folder / job_id / f"{job_id}_0_log.err")
        self.state = "FAILED" if error else "COMPLETED"
        self.cancelled = False

    def done(self) -> bool:
        return True

    def result(self):
        if self._error:
            raise RuntimeError(self._error)
        return self._result

    def cancel(self, check: bool = True) -> None:
        self.cancelled = True


class FakeSubmitter:
    """One per job (as the executor makes them); ``log`` records (parameters, names, job) of each submission;
    ``refuse_at``: the submission (1, 2, ...) that sbatch refuses; ``fail``: run names whose job fails."""

    def __init__(self, folder: Path, log: list, refuse_at: int | None = None, fail: tuple[str, ...] = ()) -> None:
        self.folder, self.log, self.refuse_at, self.fail, self.params = folder, log, refuse_at, fail, {}

    def update_parameters(self, **params) -> None:
        self.params.update(params)

    def submit(self, group):
        (self.folder / f".submission_{len(self.log)}.sh").parent.mkdir(parents=True, exist_ok=True)
        (self.folder / f".submission_{len(self.log)}.sh").write_text("#!/bin/bash\n")  # what submitit writes first
        if self.refuse_at == len(self.log) + 1:
            raise RuntimeError("Command failed\nsbatch: error: invalid partition specified: nope\n"
                               "sbatch: error: Batch job submission failed: Invalid partition name specified")  # fmt: skip
        job_id = str(100 + len(self.log))
        names = [r.name for r in group.runs]
        failing = any(n in self.fail for n in names)
        job = FakeJob(job_id, self.folder, {n: 1.5 for n in names}, "boom" if failing else None)
        if failing:
            job.paths.stderr.parent.mkdir(parents=True, exist_ok=True)
            job.paths.stderr.write_text("".join(f"line {k}\n" for k in range(30)) + "ValueError: out of memory\n")
        self.log.append((dict(self.params), names, job))
        return job
