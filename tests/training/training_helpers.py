"""Helpers of the training tests: a tiny run config written as YAML."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from mtlswin.models import test_overrides


def tiny_config(tmp: Path, tiny, name: str = "run", **sections) -> Path:
    """A YAML config for a tiny ``mtl_swin_unet`` (cls+seg+rec) on the data set ``tiny``; ``sections`` update the defaults."""
    model = {"name": "mtl_swin_unet", **test_overrides("mtl_swin_unet")}
    model = {k: list(v) if isinstance(v, tuple) else v for k, v in model.items()}
    config = {
        "model": model,
        "data": {"manifest": str(tiny.manifest), "splits": str(tiny.splits), "batch_size": 8, "num_workers": 0},
        "train": {"epochs": 2, "lr": 0.05, "seed": 0, "checkpoint_every_n_steps": 2},
        "trainer": {
            "accelerator": "cpu",
            "deterministic": True,
            "enable_model_summary": False,
            "enable_progress_bar": False,
        },
        "output": {"dir": str(tmp / "runs"), "name": name},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m mtlswin ARGS`` in a subprocess; fails the test with its output on a non-zero exit."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "mtlswin", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, f"mtlswin {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


STALL = Path(__file__).with_name("stall_train.py")


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    """The model weights in ``run``'s ``checkpoints/last.ckpt``."""
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def kill_at_step(config: Path, step: int, marker: Path) -> tuple[int, int]:
    """Train ``config`` in a subprocess (stall_train.py) until it stalls at global step ``step``, then SIGKILL it;
    the ``(epoch, batch index)`` it was at."""
    killed = subprocess.Popen([sys.executable, str(STALL), str(step), str(marker), str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 240
    while not marker.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), f"the run never reached step {step}: {killed.communicate()[1][-3000:]}"
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    epoch, batch_idx = map(int, marker.read_text().split())
    return epoch, batch_idx
