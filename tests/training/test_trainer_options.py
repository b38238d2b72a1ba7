"""Trainer options: precision passes through to Lightning, `compile` is ours, bf16 training runs on CPU."""

from __future__ import annotations

import math

import pandas as pd
import pytest
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


def _counting_backend(shapes: list):
    """A torch.compile backend that records the input shapes of every graph it is given and runs it eagerly."""

    def backend(gm, example_inputs):
        shapes.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        return gm.forward

    return backend


def test_trainer_compile_compiles_the_full_training_batch_once(tmp_path, tiny_data):
    """``trainer.compile`` goes to ``torch.compile`` for real (a registered recording backend here: inductor takes
    minutes on two shared CPU cores). One graph, for the full training batch: the epoch's last, smaller batch and
    validation run eagerly, so nothing is compiled twice; the state-dict keys are the model's."""
    import torch._dynamo
    from torch._dynamo import register_backend

    shapes: list = []
    register_backend(name="mtlswin_test_record", compiler_fn=_counting_backend(shapes))
    torch._dynamo.reset()
    n_train = int((pd.read_csv(tiny_data.splits)["split"] == "train").sum())
    assert n_train % 8, "the test needs a smaller last batch"  # 33 slices: four batches of 8 and one of 1
    trainer = {"compile": "mtlswin_test_record"}
    model = {"depths": [2, 2], "num_heads": [1, 2]}  # two stages: half the tracing of the tiny model
    run = train(load_config(tiny_config(tmp_path, tiny_data, "compiled", trainer=trainer, model=model)))
    images = [s for graph in shapes for s in graph if len(s) == 4 and s[1:] == (1, 32, 32)]  # (B, 1, H, W) inputs
    assert images == [(8, 1, 32, 32)], images  # compiled for the full batch only, once
    assert len(shapes) == 1, shapes  # one forward graph: no recompilation for the last batch or validation
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 * math.ceil(n_train / 8)  # the last batches trained too (eagerly)
    assert not any("_orig_mod" in k or "_compiled" in k for k in ckpt["state_dict"])  # keys unchanged


def test_trainer_compile_falls_back_to_eager_when_compiling_fails(tmp_path, tiny_data):
    """A backend that cannot compile (e.g. no C++ compiler for inductor) costs a warning, not the run: the weights
    equal those of a run that never asked for compilation."""
    import torch._dynamo
    from torch._dynamo import register_backend

    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler here")

    register_backend(name="mtlswin_test_broken", compiler_fn=broken)
    torch._dynamo.reset()
    base = {"max_steps": 3, "limit_val_batches": 0}
    model = {"depths": [2, 2], "num_heads": [1, 2]}
    with pytest.warns(UserWarning, match="compiling the training forward failed"):
        failed = train(
            load_config(
                tiny_config(
                    tmp_path, tiny_data, "broken", trainer={**base, "compile": "mtlswin_test_broken"}, model=model
                )
            )
        )
    eager = train(load_config(tiny_config(tmp_path, tiny_data, "eager", trainer=base, model=model)))
    weights = [
        torch.load(r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        for r in (failed, eager)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert all(torch.isfinite(w).all() for w in weights[0].values() if w.is_floating_point())
