"""``TrainingData`` (the run's data module): a ``CTDataModule`` whose train loader resumes mid-epoch."""

from __future__ import annotations

import math

import torch
from training_helpers import tiny_config

from mtlswin.config import load_config
from mtlswin.data.datamodule import CTDataModule
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
