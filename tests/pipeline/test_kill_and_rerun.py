"""SIGKILL in the middle of `predict` and of `reproduce`, then a re-run: nothing half-written is used, and the
result equals that of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from data_fixtures import write_ct_dicom
from micro_runs import MICRO_RUN, set_args
from mtlswin.models import create_model, save_model, test_overrides

MICRO = ["train.epochs=2", "train.checkpoint_every_n_steps=1", "trainer.deterministic=true", *MICRO_RUN]


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "mtlswin", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _run(*args: str, timeout: float = 600) -> str:
    proc = _start(*args)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"mtlswin {' '.join(args)} failed:\n{out[-4000:]}"
    return out


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true; fails if the process ends first."""
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the process ended before the kill point:\n{proc.stdout.read()[-3000:]}"
        assert time.monotonic() < end, "kill point not reached in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _visible_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.fixture
def run_and_dicoms(tmp_path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    model = create_model("mtl_swin_unet", **test_overrides("mtl_swin_unet"))
    run = tmp_path / "run"
    save_model(model, run / "model.safetensors")
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "mtl_swin_unet"}, "data": {"img_size": 32}}))
    rng = np.random.default_rng(0)
    (tmp_path / "dicoms").mkdir()
    for k in range(96):
        uid = f"1.2.826.0.1.3680043.8.498.{1000 + k}"
        write_ct_dicom(tmp_path / "dicoms" / f"{uid}.dcm", rng.integers(900, 1200, (32, 32)).astype(np.int16))
    return run, tmp_path / "dicoms"


def test_sigkill_mid_predict_then_rerun_equals_an_uninterrupted_run(run_and_dicoms, tmp_path):
    run, dicoms = run_and_dicoms
    _run("predict", str(run), str(dicoms), "--out", str(tmp_path / "reference"))
    out = tmp_path / "killed"
    proc = _start("predict", str(run), str(dicoms), "--out", str(out))
    _kill_when(proc, lambda: len(list((out / "overlays").glob("*.png"))) >= 20)
    # Killed mid-way: no predictions.csv yet, every visible overlay is a whole PNG (no torn file under a real name).
    assert not (out / "predictions.csv").exists()
    for png in _visible_files(out):
        with Image.open(png) as im:
            im.load()
    _run("predict", str(run), str(dicoms), "--out", str(out))
    reference = pd.read_csv(tmp_path / "reference" / "predictions.csv")
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"), reference)
    assert [p.name for p in _visible_files(out / "overlays")] == [
        p.name for p in _visible_files(tmp_path / "reference" / "overlays")
    ]
    assert len(reference) == 96 and reference["name"].is_unique


@pytest.mark.slow
@pytest.mark.timeout(3600)  # four micro reproduce calls in subprocesses: minutes on a loaded 2-core machine
def test_sigkill_mid_reproduce_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_data):
    args = ["reproduce", "--preset", "demo", "--manifest", str(tiny_data.manifest), "--seeds", "0", "--rows", "swin"]
    _run(*args, "--out", str(tmp_path / "reference"), *set_args(MICRO))
    out = tmp_path / "killed"
    run = out / "runs" / "swin-seed0"
    proc = _start(*args, "--out", str(out), *set_args(MICRO))
    _kill_when(proc, lambda: (run / "checkpoints" / "last.ckpt").is_file())  # mid-training
    assert not (run / "model.safetensors").exists() and not (out / "report.md").exists()
    second = _run(*args, "--out", str(out), *set_args(MICRO))
    assert "splits (your manifest): skipped (valid output exists)" in second and "train swin-seed0: running" in second
    ref_run = tmp_path / "reference" / "runs" / "swin-seed0"
    for name, tensor in load_file(ref_run / "model.safetensors").items():
        torch.testing.assert_close(load_file(run / "model.safetensors")[name], tensor, rtol=0, atol=0)
    assert json.loads((run / "metrics.json").read_text()) == json.loads((ref_run / "metrics.json").read_text())
    pd.testing.assert_frame_equal(pd.read_csv(out / "table1.csv"), pd.read_csv(tmp_path / "reference" / "table1.csv"))
    # The training log kept the rows from before the kill (the resume merged them, nothing was deleted).
    log = pd.read_csv(run / "logs" / "metrics.csv")
    assert log["epoch"].min() == 0 and not (run / "logs" / "metrics.csv.before-resume").exists()
    # Changed overrides: the run is not "done" any more; it is retrained and the old one set aside.
    third = _run(*args, "--out", str(out), *set_args([*MICRO, "train.lr=0.02"]))
    assert "train swin-seed0: running" in third and "its config changed" in third
    assert list((out / "runs").glob("swin-seed0.replaced-*"))
