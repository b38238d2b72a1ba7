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


def test_trainer_compile_runs_the_training_steps_through_torch_compile(tmp_path, tiny_data):
    """``trainer.compile`` is exercised for real: a backend name goes to ``torch.compile`` (``eager`` here, the
    TorchDynamo capture without code generation, which inductor takes minutes on two shared CPU cores)."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    trainer = {"compile": "eager", "max_steps": 2, "limit_val_batches": 0}
    model = {"depths": [2, 2], "num_heads": [1, 2]}  # two stages: half the tracing of the tiny model
    run = train(load_config(tiny_config(tmp_path, tiny_data, "compiled", trainer=trainer, model=model)))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the model's forward was captured
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])  # compiled in place: the keys are unchanged
