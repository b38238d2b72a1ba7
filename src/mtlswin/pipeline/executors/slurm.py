"""The Slurm executor: a schedule's runs as Slurm jobs through submitit, small runs packed N to a job (and its GPU).

**Jobs.** The runs are cut into groups (:func:`group_runs`): waves by dependency (a Joint-Swin run comes in a later
wave than its Swin-Unet), each wave in chunks of ``runs_per_job``. A group is one job; its N runs train side by
side in N worker processes sharing the job's GPU and its ``SLURM_CPUS_PER_TASK`` cores
(:func:`mtlswin.pipeline.executors.local.run_tasks`), one run alone in the job's own process. A job that trains a
run which needs another waits for that run's job with ``--dependency=afterok:<ids>``. Every job is submitted
before any is waited for; then the executor polls the jobs and prints a line as each one starts and ends. The
work of a run is :func:`mtlswin.pipeline.executors.work.train_and_evaluate`, the same as a local worker's, so both
give the same metrics.

**Requeue.** One layer owns it: submitit. The job's callable is a ``submitit.helpers.Checkpointable`` whose
``checkpoint()`` resubmits itself; on preemption or timeout Slurm signals the job, submitit requeues it, and the
requeued job calls :func:`train_and_evaluate` again, which resumes from ``checkpoints/last.ckpt`` (a run already
done is skipped). A job requeued from outside (``scontrol requeue``) restarts the same way. Lightning does not
requeue (:mod:`mtlswin.training.cluster_env`: ``SLURMEnvironment(auto_requeue=False)``).

**Failures.** A submission that sbatch refuses (an unknown partition) is a :class:`SubmissionError` naming
sbatch's reason; the jobs this call had submitted are cancelled and the files it wrote removed, so nothing is
left half-made. A job that fails stops the schedule (the other jobs are cancelled) with a :class:`RunFailed`
naming its runs, its job id, its log and the last lines of its stderr.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from mtlswin.pipeline.executors.base import RunFailed, RunResult
from mtlswin.pipeline.executors.local import QUIET, RunClock, plan_slots, run_tasks
from mtlswin.pipeline.executors.work import available_cores, check_finished, set_threads, train_and_evaluate
from mtlswin.pipeline.schedule import Schedule, TrainRun
from mtlswin.pipeline.stages import Progress

__all__ = [
    "SLURM_KEYS",
    "RunGroup",
    "SlurmExecutor",
    "SubmissionError",
    "failure_message",
    "group_runs",
    "parse_slurm_option",
    "sbatch_flags",
]

# --slurm KEY=VALUE: the keys, their types and what they mean (minutes for time; GB for mem_gb).
SLURM_KEYS: dict[str, type] = {
    "partition": str,
    "time": int,
    "gpus_per_node": int,
    "cpus_per_task": int,
    "mem_gb": float,
    "account": str,
    "constraint": str,
}
DEFAULT_TIME_MIN = 240  # a longer run is requeued at the limit and resumes from its last.ckpt
MAX_REQUEUES = 20  # the timeouts (and preemptions) submitit requeues a job after
TAIL_LINES = 20
# Slurm's states of a job that has ended (a requeued job passes through REQUEUED and PENDING instead)
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")


class SubmissionError(ValueError):
    """sbatch refused a job (or is not there): the options are wrong for this cluster. Nothing of it is left."""


def parse_slurm_option(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` of ``--slurm`` -> ``(key, typed value)``; a ``ValueError`` naming the known keys."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not value.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    if key not in SLURM_KEYS:
        raise ValueError(f"unknown key {key!r}; the keys: {', '.join(SLURM_KEYS)}")
    kind = SLURM_KEYS[key]
    try:
        typed = kind(value.strip())
    except ValueError as err:
        raise ValueError(f"{key} takes a{'n integer' if kind is int else ' number'}, got {value!r}") from err
    if kind in (int, float) and typed <= 0 and not (key == "gpus_per_node" and typed == 0):
        raise ValueError(f"{key} must be positive, got {value!r}")
    return key, typed


def sbatch_flags(options: Mapping[str, Any]) -> list[str]:
    """The sbatch flags of ``--slurm`` options (for the up-front ``sbatch --test-only`` check)."""
    flags = []
    for key, value in options.items():
        if key == "mem_gb":
            flags.append(f"--mem={max(1, round(float(value) * 1024))}M")
        elif key == "gpus_per_node" and not value:
            continue
        else:
            flags.append(f"--{key.replace('_', '-')}={value}")
    return flags


def _submitit_parameters(options: Mapping[str, Any]) -> dict[str, Any]:
    """submitit's ``AutoExecutor`` parameters of ``--slurm`` options."""
    names = {"time": "timeout_min", "partition": "slurm_partition", "account": "slurm_account",
             "constraint": "slurm_constraint"}  # fmt: skip
    params = {names.get(k, k): v for k, v in options.items() if not (k == "gpus_per_node" and not v)}
    params.setdefault("timeout_min", DEFAULT_TIME_MIN)
    return params


def group_runs(runs: Sequence[TrainRun], per_job: int) -> list[tuple[TrainRun, ...]]:
    """``runs`` in jobs of at most ``per_job``: waves by dependency (a run comes after the runs it needs that are
    among ``runs``; others are taken as done), each wave cut in order into chunks of ``per_job``."""
    names = {r.name for r in runs}
    placed: set[str] = set()
    pending = list(runs)
    groups: list[tuple[TrainRun, ...]] = []
    while pending:
        wave = [r for r in pending if all(n in placed or n not in names for n in r.needs)]
        if not wave:
            raise RuntimeError(f"runs {[r.name for r in pending]} wait for runs that never finish")
        groups += [tuple(wave[i : i + per_job]) for i in range(0, len(wave), per_job)]
        placed |= {r.name for r in wave}
        pending = [r for r in pending if r.name not in placed]
    return groups


class RunGroup(submitit.helpers.Checkpointable):
    """What one Slurm job runs: its runs side by side (one process each, the job's cores shared), each trained
    or resumed, then evaluated. ``checkpoint()`` (submitit's) resubmits this very callable: the requeued job
    starts over and every run resumes from its ``last.ckpt``. Returns the seconds of training per run."""

    def __init__(self, runs: Sequence[TrainRun]) -> None:
        self.runs = tuple(runs)

    def __call__(self) -> dict[str, float]:
        if len(self.runs) == 1:
            set_threads(available_cores())
            run = self.runs[0]
            return {run.name: train_and_evaluate(run, QUIET)[0]}
        log = lambda m: print(m, flush=True)  # noqa: E731 - the job's log
        return run_tasks(self.runs, plan_slots(len(self.runs)), log=log, quiet_overrides=QUIET)


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no stderr was written)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(its stderr is empty)"


def failure_message(names: Sequence[str], job_id: str, state: str, log: Path, tail: str) -> str:
    """What a failed job reports: its runs, its job id and state, its log and the tail of its stderr."""
    runs = ", ".join(names)
    indented = "\n".join(f"    {line}" for line in tail.splitlines())
    return (f"training {runs} failed in Slurm job {job_id} ({state}); its log: {log}\n"
            f"  the last lines of its stderr:\n{indented}")  # fmt: skip


def sbatch_error(err: BaseException) -> str:
    """sbatch's own reason in a failed submission's error (its ``sbatch: error:`` lines), else the error."""
    lines = [ln.strip() for ln in str(err).splitlines() if "error:" in ln and "sbatch" in ln]
    return "; ".join(dict.fromkeys(ln.split("error:", 1)[1].strip() for ln in lines)) or str(err).strip()


def check_submission(options: Mapping[str, Any]) -> None:
    """Ask sbatch (``--test-only``: nothing is queued) whether it would take a job with ``options``; a
    :class:`SubmissionError` with its reason (e.g. ``invalid partition specified: nope``) if not."""
    if shutil.which("sbatch") is None:
        raise SubmissionError("--executor slurm: no sbatch on PATH; run reproduce on a Slurm login node")
    cmd = ["sbatch", "--test-only", *sbatch_flags(options), "--wrap=true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SubmissionError(f"sbatch refuses the job ({' '.join(sbatch_flags(options)) or 'no --slurm options'}): "
                              f"{sbatch_error(RuntimeError(proc.stderr + proc.stdout))}")  # fmt: skip


@dataclass
class _Job:
    job: Any  # submitit's Job
    runs: tuple[TrainRun, ...]
    started: bool = False


def job_state(job: Any) -> str:
    """A job's state: submitit's (from sacct), else slurmctld's (``scontrol show job``: clusters without accounting,
    where submitit's stays UNKNOWN); ``UNKNOWN`` when neither knows the job."""
    state = str(job.state)
    if state != "UNKNOWN" or shutil.which("scontrol") is None:
        return state
    proc = subprocess.run(["scontrol", "-o", "show", "job", str(job.job_id)], capture_output=True, text=True)
    found = re.search(r"\bJobState=(\S+)", proc.stdout) if proc.returncode == 0 else None
    return found.group(1) if found else "UNKNOWN"


def _submitit_executor(folder: Path) -> Any:
    return submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=MAX_REQUEUES,
                                 slurm_python=sys.executable)  # fmt: skip


class SlurmExecutor:
    """Trains a schedule as Slurm jobs (module docstring): ``options`` (``--slurm``), ``runs_per_job`` runs to a
    job, job folders and logs under ``folder`` (``OUT/slurm``). ``submitter(folder)`` makes a fresh submitit
    executor per job (tests pass a stand-in); ``poll_s``: seconds between looks at the jobs."""

    def __init__(
        self, folder: Path, options: Mapping[str, Any], runs_per_job: int, progress: Progress, tag: str = "",
        log: Callable[[str], None] = print, submitter: Callable[[Path], Any] = _submitit_executor,
        poll_s: float = 5.0,
    ) -> None:  # fmt: skip
        self.folder, self.options, self.per_job = Path(folder), dict(options), max(1, runs_per_job)
        self.progress, self.tag, self.log, self.submitter, self.poll_s = progress, tag, log, submitter, poll_s

    def run(self, schedule: Schedule) -> dict[str, RunResult]:
        """Submit the jobs of ``schedule.train`` (afterok dependencies), wait for them; the result per run."""
        runs = schedule.train
        if not runs:
            return {}
        start = time.perf_counter()
        jobs = self.submit(group_runs(runs, self.per_job))
        seconds = self._wait(jobs, len(runs))
        check_finished(runs)
        what = "train and evaluate" if any(r.evaluate for r in runs) else "train"
        self.progress.timings[f"{what} {len(runs)} runs in {len(jobs)} Slurm jobs{self.tag}"] = (
            time.perf_counter() - start
        )
        return {r.name: RunResult(seconds[r.name], evaluated=bool(r.evaluate)) for r in runs}

    def submit(self, groups: Sequence[tuple[TrainRun, ...]]) -> list[_Job]:
        """One job per group, each after the jobs of the runs it needs (``afterok``); on a refusal, cancel what
        was submitted, remove what the submissions wrote and raise a :class:`SubmissionError`."""
        existed = self.folder.exists()
        before = set(self.folder.iterdir()) if existed else set()
        job_of: dict[str, str] = {}
        jobs: list[_Job] = []
        try:
            for group in groups:
                executor = self.submitter(self.folder)
                executor.update_parameters(name=f"mtlswin-{group[0].name}", **_submitit_parameters(self.options))
                after = sorted({job_of[n] for r in group for n in r.needs if n in job_of}, key=int)
                if after:
                    executor.update_parameters(slurm_dependency="afterok:" + ":".join(after))
                job = executor.submit(RunGroup(group))
                jobs.append(_Job(job, group))
                job_of.update({r.name: str(job.job_id) for r in group})
                names = ", ".join(r.name for r in group)
                waits = f" after job(s) {', '.join(after)}" if after else ""
                self.log(f"train {names}: submitted as Slurm job {job.job_id}{waits}{self.tag}")
        except Exception as err:
            self._undo(jobs, existed, before)
            raise SubmissionError(f"sbatch refused a job ({' '.join(sbatch_flags(self.options))}): "
                                  f"{sbatch_error(err)}") from err  # fmt: skip
        return jobs

    def _undo(self, jobs: Sequence[_Job], existed: bool, before: set[Path]) -> None:
        for j in jobs:
            j.job.cancel(check=False)
        if not existed:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        for path in set(self.folder.iterdir()) - before:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def _failed(self, j: _Job, waiting: Sequence[_Job], state: str) -> RunFailed:
        for other in waiting:
            other.job.cancel(check=False)
        stderr = Path(j.job.paths.stderr)
        return RunFailed(failure_message([r.name for r in j.runs], str(j.job.job_id), state, stderr, _tail(stderr)))

    def _wait(self, jobs: list[_Job], total: int) -> dict[str, float]:
        """Poll the jobs until all are done; a line per start and end; the first failure cancels the rest."""
        clock = RunClock(total, self.per_job * len(jobs))
        seconds: dict[str, float] = {}
        waiting = list(jobs)
        while waiting:
            for j in list(waiting):
                names = ", ".join(r.name for r in j.runs)
                if not j.job.done():
                    state = job_state(j.job)
                    if state in ENDED and not j.job.done():  # ended without a result: killed, out of memory, ...
                        waiting.remove(j)
                        raise self._failed(j, waiting, state)
                    if not j.started and state == "RUNNING":
                        j.started = True
                        self.log(f"train {names}: running in Slurm job {j.job.job_id}{self.tag}")
                    continue
                waiting.remove(j)
                try:
                    result = j.job.result()
                except Exception as err:
                    raise self._failed(j, waiting, job_state(j.job)) from err
                for run in j.runs:
                    seconds[run.name] = float(result[run.name])
                    self.log(f"train {run.name}: done in {seconds[run.name]:.1f} s in Slurm job {j.job.job_id} "
                             f"({clock.finished(seconds[run.name])}){self.tag}")  # fmt: skip
            if waiting:
                time.sleep(self.poll_s)
        return seconds
