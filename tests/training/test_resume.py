"""A run SIGKILLed in the middle of an epoch and resumed with --resume ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from training_helpers import kill_at_step, last_weights, run_cli, tiny_config

KILL_STEP = 8  # 5 batches per epoch (40 train slices / 8): step 8 is the 4th batch of epoch 1


def _last_val(run: Path) -> pd.Series:
    log = pd.read_csv(run / "logs" / "metrics.csv")
    return log.dropna(subset=["val/auc"]).iloc[-1][["epoch", "step", "val/auc", "val/loss", "val/iou", "val/acc"]]


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, tiny_data):
    model = {"drop_path_rate": 0.1}  # stochastic depth on: the resumed run must redraw the same masks
    full_cfg = tiny_config(tmp_path, tiny_data, "full", model=model)
    killed_cfg = tiny_config(tmp_path, tiny_data, "killed", model=model)
    marker = tmp_path / "stalled"
    full = subprocess.Popen([sys.executable, "-m", "mtlswin", "train", str(full_cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert kill_at_step(killed_cfg, KILL_STEP, marker) == (1, 3)  # really in the middle of an epoch
    run = tmp_path / "runs" / "killed"
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == KILL_STEP

    run_cli("train", str(killed_cfg), "--resume")
    assert full.wait(timeout=300) == 0, full.stderr.read()[-3000:]

    a, b = last_weights(tmp_path / "runs" / "full"), last_weights(run)
    max_diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f"resume: max abs weight difference = {max_diff}")
    assert a.keys() == b.keys() and max_diff == 0.0
    pd.testing.assert_series_equal(_last_val(tmp_path / "runs" / "full"), _last_val(run))
    assert (run / "model.safetensors").is_file()
    # The log keeps the rows written before the kill and continues after it.
    steps = pd.read_csv(run / "logs" / "metrics.csv")["step"]
    assert steps.min() < KILL_STEP < steps.max()
