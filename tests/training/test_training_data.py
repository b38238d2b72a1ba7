"""``TrainingData`` (the run's data module): a ``CTDataModule`` whose train loader resumes mid-epoch."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from training_helpers import tiny_config

from mtlswin.config import load_config
from mtlswin.data.datamodule import CTDataModule
from mtlswin.data.device_cache import BatchRequest
from mtlswin.training.datamodule import TrainingData
from mtlswin.training.resume import ResumableTrainLoader
from mtlswin.training.train import build_datamodule


def test_build_datamodule_gives_a_resumable_ctdatamodule(tmp_path, tiny_data):
    config = load_config(tiny_config(tmp_path, tiny_data, data={"batch_size": 3}))
    data = build_datamodule(config)
    assert isinstance(data, TrainingData) and isinstance(data, CTDataModule)
    n_train = len(data.indices("train"))
    assert n_train > 6
    assert data.batches_per_epoch() == math.ceil(n_train / 3)
    assert data.batches_per_epoch(world_size=4) == math.ceil(math.ceil(n_train / 4) / 3)

    loader = data.train_dataloader()
    assert isinstance(loader, ResumableTrainLoader) and data.position.loader is loader
    assert len(loader) == data.batches_per_epoch()
    loader.current_epoch = lambda: 0  # no trainer here: epoch 0

    # Resuming after two batches of epoch 0 yields exactly the batches an uninterrupted epoch yields next.
    full = list(loader)
    loader.load_state_dict({"epoch": 0, "batches_done": 2, "batch_size": 3})
    resumed = list(loader)
    assert len(resumed) == len(full) - 2
    for a, b in zip(full[2:], resumed, strict=True):  # same slices, same augmentation draws
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])


def _device_and_cpu_data(tmp_path, tiny_data, cache_dtype: str = "uint8"):
    """The same run's data module twice: CPU loader, and device cache (on the CPU here, the only device)."""
    data = {"batch_size": 8, "cache_dir": str(tmp_path / "cache"), "cache_dtype": cache_dtype}
    cpu = build_datamodule(load_config(tiny_config(tmp_path, tiny_data, "cpu", data=data)))
    dev = build_datamodule(load_config(tiny_config(tmp_path, tiny_data, "dev", data={**data, "device_cache": True})))
    dev.trainer = SimpleNamespace(lightning_module=SimpleNamespace(device=torch.device("cpu")), current_epoch=1)
    cpu.trainer = SimpleNamespace(current_epoch=1)
    return cpu, dev


@pytest.mark.parametrize("cache_dtype", ["uint8", "float16"])
def test_device_cache_batches_equal_those_of_the_cpu_loader(tmp_path, tiny_data, cache_dtype):
    cpu, dev = _device_and_cpu_data(tmp_path, tiny_data, cache_dtype)
    assert dev._on_device is None and dev.cache_dtype == cache_dtype
    requests = list(dev.train_dataloader())  # epoch 1 (from the trainer): not the first epoch's draws
    assert all(isinstance(r, BatchRequest) for r in requests)
    built = [dev.on_after_batch_transfer(r, 0) for r in requests]
    assert dev._on_device.images.dtype == getattr(torch, cache_dtype)  # held as stored, not as float32
    expected = list(cpu.train_dataloader())
    assert len(built) == len(expected) == cpu.batches_per_epoch()
    rotated = 0
    for a, b in zip(expected, built, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key == "patient_id":
                assert a[key] == b[key]
                continue
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            if key == "image":
                assert (a[key] - b[key]).abs().max().item() <= 1e-6
            else:
                assert torch.equal(a[key], b[key]), key
        rotated += int(sum(r.draws.rotate.sum() for r in requests))
    assert rotated > 0  # the free rotation ran on the device path
    assert dev.on_after_batch_transfer(expected[0], 0) is expected[0]  # a ready batch passes through


def test_device_cache_run_trains_like_the_cpu_loader(tmp_path, tiny_data):
    """A run with the device cache ends with the weights of the same run on the CPU loader (paper policy)."""
    from mtlswin.models.conversion.files import read_state_dict
    from mtlswin.training.train import train

    data = {"cache_dir": str(tmp_path / "cache"), "augment": "paper"}
    train_opts = {"epochs": 2, "lr": 0.05, "seed": 0, "checkpoint_every_n_steps": 0}
    runs = [train(load_config(tiny_config(tmp_path, tiny_data, name, data={**data, "device_cache": on},
                                          train=train_opts)))
            for name, on in (("cpu", False), ("dev", True))]  # fmt: skip
    a, b = (read_state_dict(run / "model.safetensors") for run in runs)
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f"device cache vs CPU loader: max abs weight difference {diff:.3g}")
    assert a.keys() == b.keys() and diff <= 1e-5


def test_device_cache_loader_resumes_mid_epoch_with_the_same_requests(tmp_path, tiny_data):
    _, dev = _device_and_cpu_data(tmp_path, tiny_data)
    loader = dev.train_dataloader()
    full = list(loader)
    loader.load_state_dict({"epoch": 1, "batches_done": 2, "batch_size": 8})
    resumed = list(loader)
    assert len(resumed) == len(full) - 2 > 0
    for a, b in zip(full[2:], resumed, strict=True):  # same positions, same draws
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.draws.angle, b.draws.angle)
        assert np.array_equal(a.draws.k, b.draws.k) and np.array_equal(a.draws.rotate, b.draws.rotate)
