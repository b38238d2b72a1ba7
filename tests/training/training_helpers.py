"""Helpers of the training tests: a tiny run config written as YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
