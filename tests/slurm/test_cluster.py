"""The one-node Slurm of cluster.sh does what the Slurm executor's tests need: batch jobs run and finish,
1-CPU jobs run side by side, submitit's jobs run this interpreter with this environment, a running job that is
requeued runs again."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit

import mtlswin


def _sbatch(cluster, tmp_path: Path, script: str, *options: str) -> str:
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--partition={cluster.partition}",
            f"--chdir={tmp_path}",
            f"--output={tmp_path}/slurm-%j.out",
            *options,
            "--wrap",
            script,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"sbatch failed: {out.stderr}\n{cluster.diagnose()}"
    return out.stdout.strip().split(";")[0]


def _wait_for(predicate, timeout: float, what: str, cluster, job_id=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s\n{cluster.diagnose(job_id)}")
        time.sleep(0.1)


def test_batch_job_runs_and_completes(slurm_cluster, tmp_path):
    job = _sbatch(slurm_cluster, tmp_path, 'echo "hello from $SLURM_JOB_ID" > hello.txt; echo to-stdout')
    assert slurm_cluster.wait_state(job) == "COMPLETED"
    assert (tmp_path / "hello.txt").read_text() == f"hello from {job}\n"
    assert (tmp_path / f"slurm-{job}.out").read_text() == "to-stdout\n"


def test_one_cpu_jobs_run_side_by_side(slurm_cluster, tmp_path):
    # each job marks its start, then waits for the test's go: both marks at once prove they shared the node
    script = "touch started.$SLURM_JOB_ID; while [ ! -e release ]; do sleep 0.1; done"
    jobs = [_sbatch(slurm_cluster, tmp_path, script, "--cpus-per-task=1") for _ in range(2)]
    try:
        _wait_for(
            lambda: all((tmp_path / f"started.{j}").exists() for j in jobs), 60, "two running jobs", slurm_cluster
        )
        assert [slurm_cluster.job_state(j) for j in jobs] == ["RUNNING", "RUNNING"]
    finally:
        (tmp_path / "release").touch()
    for j in jobs:
        slurm_cluster.wait_state(j)


def test_submitit_job_runs_this_interpreter_and_code(slurm_cluster, tmp_path):
    def in_job(x: int) -> tuple[int, str, str, str | None]:
        # nested, so cloudpickle sends it by value: the job could not import this test module by name
        import os
        import sys

        import mtlswin

        return 2 * x, mtlswin.__file__, sys.executable, os.environ.get("SLURM_JOB_ID")

    executor = submitit.AutoExecutor(folder=tmp_path)
    assert executor.cluster == "slurm"
    executor.update_parameters(slurm_partition=slurm_cluster.partition, timeout_min=5, cpus_per_task=1)
    job = executor.submit(in_job, 21)
    # without accounting job.state stays UNKNOWN and job.result() would wait forever for a job that died without a
    # result: wait on slurmctld's record instead, with a time limit
    slurm_cluster.wait_state(job.job_id)
    assert job.result() == (42, mtlswin.__file__, sys.executable, job.job_id)


def test_requeued_running_job_runs_again(slurm_cluster, tmp_path):
    # the first run writes a line and sleeps; scontrol requeue kills it and queues it again; the second run writes
    # a second line (with SLURM_RESTART_COUNT=1) and ends
    script = 'echo "run ${SLURM_RESTART_COUNT:-0}" >> runs.txt; [ $(wc -l < runs.txt) -ge 2 ] || sleep 300'
    job = _sbatch(slurm_cluster, tmp_path, script, "--requeue", "--open-mode=append")
    runs = tmp_path / "runs.txt"
    _wait_for(lambda: runs.exists() and runs.read_text(), 60, "first run", slurm_cluster, job)
    assert slurm_cluster.job_state(job) == "RUNNING"
    requeue = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
    assert requeue.returncode == 0, requeue.stderr
    # a requeued job may start again cred_expire (5 s in cluster.sh) after the requeue
    assert slurm_cluster.wait_state(job, timeout=90) == "COMPLETED"
    assert runs.read_text() == "run 0\nrun 1\n"
