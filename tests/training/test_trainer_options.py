"""Trainer options: precision passes through to Lightning, `compile` is ours, bf16 training runs on CPU."""

from __future__ import annotations

import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from training_helpers import tiny_config

from mtlswin.config import load_config
from mtlswin.training.checkpoint_io import AtomicCheckpointIO
from mtlswin.training.train import build_trainer, train


def test_build_trainer_passes_options_and_uses_atomic_io(tmp_path, tiny_data):
    cfg = load_config(tiny_config(tmp_path, tiny_data), ["trainer.precision=bf16-mixed", "trainer.compile=true"])
    trainer = build_trainer(cfg, tmp_path / "run", [])
    assert isinstance(trainer.precision_plugin, MixedPrecision) and trainer.precision == "bf16-mixed"
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert trainer.max_epochs == cfg.train.epochs


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, tiny_data):
    path = tiny_config(tmp_path, tiny_data, "bf16", trainer={"precision": "bf16-mixed", "max_steps": 2})
    run = train(load_config(path))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert (run / "model.safetensors").is_file()
