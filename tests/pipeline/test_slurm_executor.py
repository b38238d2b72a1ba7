"""The Slurm executor without a cluster: options, jobs and their afterok dependencies, failures (fake submitit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_helpers import FakeSubmitter

from mtlswin.cli import main
from mtlswin.pipeline.executors.base import RunFailed
from mtlswin.pipeline.executors.choice import ExecutorChoice
from mtlswin.pipeline.executors.local import LocalExecutor
from mtlswin.pipeline.executors.slurm import (
    RunGroup,
    SlurmExecutor,
    SubmissionError,
    failure_message,
    group_runs,
    parse_slurm_option,
    sbatch_flags,
)
from mtlswin.pipeline.schedule import TrainRun
from mtlswin.pipeline.stages import Progress


def _run(root: Path, name: str, needs: tuple[str, ...] = ()) -> TrainRun:
    row, seed = name.rsplit("-seed", 1)
    return TrainRun(row, int(seed), root / "runs" / name, root / "c.yaml", (), needs, "digest", ("test_a",))


def _schedule(root: Path) -> list[TrainRun]:
    """Two seeds of swin_unet, joint_swin (which needs its swin_unet) and swin."""
    runs = []
    for seed in (0, 1):
        runs += [_run(root, f"swin_unet-seed{seed}"), _run(root, f"swin-seed{seed}"),
                 _run(root, f"joint_swin-seed{seed}", (f"swin_unet-seed{seed}",))]  # fmt: skip
    return runs


def _executor(tmp_path: Path, log: list, per_job: int = 1, lines: list | None = None, **fake) -> SlurmExecutor:
    make = lambda folder: FakeSubmitter(folder, log, **fake)  # noqa: E731
    return SlurmExecutor(tmp_path / "out" / "slurm", {"partition": "debug", "time": 30}, per_job, Progress(),
                         log=(lines if lines is not None else []).append, submitter=make, poll_s=0)  # fmt: skip


def test_slurm_options_are_typed_and_an_unknown_key_is_refused():
    assert parse_slurm_option("partition=gpu") == ("partition", "gpu")
    assert parse_slurm_option("time=90") == ("time", 90)
    assert parse_slurm_option("mem-gb=7.5") == ("mem_gb", 7.5)
    for bad, message in (("nodes=2", "unknown key 'nodes'"), ("time=soon", "integer"), ("partition", "KEY=VALUE"),
                         ("cpus_per_task=0", "positive")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_slurm_option(bad)
    assert sbatch_flags({"partition": "gpu", "mem_gb": 2, "gpus_per_node": 0, "time": 5}) == [
        "--partition=gpu", "--mem=2048M", "--time=5"]  # fmt: skip


def test_an_unknown_slurm_key_is_a_usage_error_of_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--out", str(tmp_path / "o"), "--executor", "slurm", "--slurm", "queue=fast"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --slurm: unknown key 'queue'" in err and "partition" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main(["reproduce", "--out", str(tmp_path / "o"), "--runs-per-gpu", "0"])
    assert main(["reproduce", "--out", str(tmp_path / "o"), "--slurm", "partition=debug"]) == 1  # needs slurm
    assert "--slurm options need --executor slurm" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_choice_builds_the_executor_with_its_defaults(tmp_path):
    local = ExecutorChoice().build(tmp_path, 3, True, Progress())
    assert isinstance(local, LocalExecutor) and local.slots.groups == ((None, 3),)  # as before: --jobs slots
    slurm = ExecutorChoice("slurm", 4, {"partition": "debug"}).build(tmp_path, 3, False, Progress())
    assert isinstance(slurm, SlurmExecutor) and slurm.per_job == 4 and slurm.folder == tmp_path / "slurm"
    assert slurm.options == {"gpus_per_node": 1, "cpus_per_task": 16, "partition": "debug"}  # 4 runs share a GPU
    on_cpu = ExecutorChoice("slurm", None, {"cpus_per_task": 2}).slurm_options(cpu_only=True)
    assert on_cpu == {"gpus_per_node": 0, "cpus_per_task": 2}


def test_runs_are_grouped_in_dependency_waves_of_runs_per_job(tmp_path):
    runs = _schedule(tmp_path)
    assert [[r.name for r in g] for g in group_runs(runs, 1)][-2:] == [["joint_swin-seed0"], ["joint_swin-seed1"]]
    groups = [[r.name for r in g] for g in group_runs(runs, 3)]
    assert groups == [["swin_unet-seed0", "swin-seed0", "swin_unet-seed1"], ["swin-seed1"],
                      ["joint_swin-seed0", "joint_swin-seed1"]]  # fmt: skip
    # a needed run outside the schedule (done already) does not hold a run back
    assert [[r.name for r in g] for g in group_runs(runs[2:3], 2)] == [["joint_swin-seed0"]]


def test_each_job_waits_for_the_jobs_of_the_runs_it_needs_with_afterok(tmp_path):
    log: list = []
    jobs = _executor(tmp_path, log, per_job=2).submit(group_runs(_schedule(tmp_path), 2))
    by_run = {name: job.job_id for _, names, job in log for name in names}
    params = {tuple(names): p for p, names, _ in log}
    assert params[("swin_unet-seed0", "swin-seed0")].get("slurm_dependency") is None
    assert params[("swin_unet-seed1", "swin-seed1")].get("slurm_dependency") is None
    after = params[("joint_swin-seed0", "joint_swin-seed1")]["slurm_dependency"]
    assert after == f"afterok:{by_run['swin_unet-seed0']}:{by_run['swin_unet-seed1']}"
    assert all(p["slurm_partition"] == "debug" and p["timeout_min"] == 30 for p, _, _ in log)
    assert [type(j.job).__name__ for j in jobs] == ["FakeJob"] * 3
    waited = _executor(tmp_path, log)._wait(jobs, 6)
    assert waited == {name: 1.5 for name in by_run}


def test_the_job_callable_resubmits_itself_on_preemption(tmp_path):
    group = RunGroup(_schedule(tmp_path)[:2])
    again = group.checkpoint()  # what submitit calls on the preemption or timeout signal
    assert again.function is group and again.args == () and not again.kwargs


def test_a_failed_job_names_its_runs_job_id_log_and_the_end_of_its_stderr(tmp_path):
    log: list = []
    executor = _executor(tmp_path, log, fail=("joint_swin-seed0",))
    jobs = executor.submit(group_runs(_schedule(tmp_path), 1))
    with pytest.raises(RunFailed) as err:
        executor._wait(jobs, 6)
    failed = next(job for _, names, job in log if names == ["joint_swin-seed0"])
    text = str(err.value)
    assert f"training joint_swin-seed0 failed in Slurm job {failed.job_id} (FAILED)" in text
    assert f"its log: {failed.paths.stderr}" in text
    assert "ValueError: out of memory" in text and "line 29" in text and "line 5\n" not in text  # the tail only
    assert all(job.cancelled for _, names, job in log if names == ["joint_swin-seed1"])  # the rest is cancelled
    assert failure_message(["a", "b"], "7", "TIMEOUT", Path("/x.err"), "one\ntwo") == (
        "training a, b failed in Slurm job 7 (TIMEOUT); its log: /x.err\n  the last lines of its stderr:\n"
        "    one\n    two")  # fmt: skip


def test_a_refused_submission_is_one_clear_error_and_leaves_nothing(tmp_path):
    log: list = []
    executor = _executor(tmp_path, log, refuse_at=2)
    with pytest.raises(SubmissionError, match="invalid partition specified: nope") as err:
        executor.submit(group_runs(_schedule(tmp_path), 1))
    assert "Command failed" not in str(err.value) and "--partition=debug" in str(err.value)
    assert len(log) == 1 and log[0][2].cancelled  # the job submitted before the refusal is cancelled
    assert not (tmp_path / "out" / "slurm").exists() and not (tmp_path / "runs").exists()
