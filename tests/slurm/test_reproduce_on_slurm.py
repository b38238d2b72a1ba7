"""``mtlswin reproduce --executor slurm`` on the one-node Slurm of ``tests/slurm/cluster.sh`` (the ``slurm_cluster``
fixture of tests/slurm/conftest.py): the same metrics as the local executor, a requeued job that resumes to the
same metrics, and an unknown partition refused with one clear error before anything is written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from micro_runs import MICRO_RUN, set_args
from mtlswin.cli import main

MICRO = ["train.epochs=1", *MICRO_RUN]
ROWS = "swin,joint_swin"  # joint_swin brings its swin_unet (auxiliary); swin_unet,joint_swin alone: no claim


def _reproduce(out: Path, *extra: str, rows: str = ROWS, seeds: str = "0,1", micro=MICRO) -> list[str]:
    return ["reproduce", "--preset", "demo", "--out", str(out), "--slices", "400", "--seeds", seeds, "--rows", rows,
            *extra, *set_args(list(micro))]  # fmt: skip


def _numbers(tree, prefix: str = "") -> dict[str, float | None]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _numbers(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _numbers(sub, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): tree} if tree is None or isinstance(tree, (int, float)) else {}


def _assert_same_metrics(a: Path, b: Path, runs: list[str]) -> None:
    for run in runs:
        left = _numbers(json.loads((a / "runs" / run / "metrics.json").read_text()))
        right = _numbers(json.loads((b / "runs" / run / "metrics.json").read_text()))
        assert left.keys() == right.keys() and left, run
        for key in left:
            x, y = left[key], right[key]
            if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                assert x is y or (x is not None and y is not None and math.isnan(y)), (run, key, x, y)
            else:
                assert y == pytest.approx(x, abs=1e-6), (run, key, x, y)


@pytest.mark.slow
def test_micro_reproduce_on_slurm_gives_the_local_metrics(slurm_cluster, tmp_path, capsys):
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    assert main(_reproduce(local, "--jobs", "2")) == 0
    assert main(_reproduce(slurm, "--executor", "slurm", "--slurm", f"partition={slurm_cluster.partition}",
                           "--slurm", "time=30")) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "submitted as Slurm job" in printed and "after job(s)" in printed  # joint_swin waits for its swin_unet
    assert printed.count("in Slurm job") >= 6 and "6 of 6 runs done" in printed
    runs = [f"{row}-seed{seed}" for row in ROWS.split(",") for seed in (0, 1)]
    _assert_same_metrics(local, slurm, runs)
    logs = list((slurm / "slurm").glob("*/*_log.err"))
    assert len(logs) == 6  # one job per run, its logs under OUT/slurm/<job id>/
    assert (slurm / "report.md").is_file() and not (slurm / "failed_runs.md").exists()


@pytest.mark.slow
def test_a_job_requeued_mid_training_resumes_to_the_same_metrics(slurm_cluster, tmp_path):
    longer = ["train.epochs=6", *MICRO_RUN]  # a checkpoint at each epoch's end: time to requeue after the first
    reference, requeued = tmp_path / "reference", tmp_path / "requeued"
    assert main(_reproduce(reference, rows="swin", seeds="0", micro=longer)) == 0
    args = _reproduce(requeued, "--executor", "slurm", "--slurm", f"partition={slurm_cluster.partition}",
                      rows="swin", seeds="0", micro=longer)  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "mtlswin", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    try:
        last = requeued / "runs" / "swin-seed0" / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 600
        while not last.is_file():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no last.ckpt after 600 s"
            time.sleep(0.2)
        (job,) = [p.name for p in (requeued / "slurm").iterdir() if p.is_dir() and p.name.isdigit()]
        assert slurm_cluster.job_state(job) == "RUNNING"
        assert not (requeued / "runs" / "swin-seed0" / "model.safetensors").exists()  # mid-training
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    log = "".join(p.read_text() for p in (requeued / "slurm" / job).glob("*_log.*"))
    assert log.count("Starting with JobEnvironment") >= 2, log[-3000:]  # it ran twice: killed, requeued, resumed
    _assert_same_metrics(reference, requeued, ["swin-seed0"])


def test_an_unknown_partition_is_one_clear_error_and_writes_nothing(slurm_cluster, tmp_path, capsys):
    out = tmp_path / "nope"
    assert main(_reproduce(out, "--executor", "slurm", "--slurm", "partition=nope")) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "invalid partition specified: nope" in lines[0], err
    assert lines[0].startswith("mtlswin reproduce: error:") and "partition=nope" in lines[0]
    assert not out.exists()
