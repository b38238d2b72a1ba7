"""The Lightning cluster environment is chosen, not detected: Slurm's without Lightning's requeue inside a job step,
Lightning's own elsewhere, and no "srun is available but not used" warning on a machine that has srun."""

from __future__ import annotations

import shutil
import warnings

import lightning.pytorch as pl
import pytest
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from training_helpers import tiny_config

from mtlswin.config import load_config
from mtlswin.training.cluster_env import cluster_environment, in_slurm_step
from mtlswin.training.train import train

SRUN_WARNING = "`srun` command is available"


@pytest.fixture
def no_slurm(monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_JOB_NAME", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)


def _job_step(monkeypatch, name: str = "mtlswin-swin-seed0") -> None:
    for key, value in {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": name, "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)


def _caught(make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = make()
    return made, [str(w.message) for w in caught]


def test_outside_a_slurm_job_it_is_lightnings_environment_without_the_srun_warning(no_slurm):
    env, caught = _caught(cluster_environment)
    assert isinstance(env, LightningEnvironment) and not in_slurm_step()
    assert not [m for m in caught if SRUN_WARNING in m]


def test_inside_a_slurm_job_step_it_is_slurms_environment_that_does_not_requeue(no_slurm, monkeypatch):
    _job_step(monkeypatch)
    env, caught = _caught(cluster_environment)
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue is False  # submitit owns the requeue
    assert not [m for m in caught if SRUN_WARNING in m]


def test_an_interactive_slurm_job_is_not_taken_for_a_job_step(no_slurm, monkeypatch):
    _job_step(monkeypatch, name="bash")  # Lightning's own rule: such a job launches its processes itself
    assert isinstance(cluster_environment(), LightningEnvironment)


@pytest.mark.skipif(shutil.which("srun") is None, reason="needs srun on PATH (the warning's condition)")
def test_a_tiny_training_with_srun_on_path_shows_no_srun_warning(no_slurm, tiny_data, tmp_path, capsys):
    _, bare = _caught(lambda: pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False))
    assert any(SRUN_WARNING in m for m in bare)  # Lightning's detection warns here: what the choice avoids
    cfg = load_config(tiny_config(tmp_path, tiny_data, train={"epochs": 1}, trainer={"limit_train_batches": 2}))
    run, caught = _caught(lambda: train(cfg))
    assert (run / "model.safetensors").is_file()
    out = capsys.readouterr()
    assert not [m for m in caught if SRUN_WARNING in m] and "srun" not in out.out + out.err
