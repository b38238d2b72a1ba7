"""``TrainingData``: the data module a training run uses (a :class:`~mtlswin.data.datamodule.CTDataModule`).

It adds what only training needs, so that ``mtlswin.data`` does not import ``mtlswin.training``:

- the train loader wrapped in :class:`~mtlswin.training.resume.ResumableTrainLoader`, whose position
  (epoch, batches done) the :class:`~mtlswin.training.resume.TrainPosition` callback ``position`` saves in
  every checkpoint, so a resumed run continues mid-epoch with the same batches;
- :meth:`batches_per_epoch`, which the LR schedule reads to turn epochs into optimiser steps;
- ``device_cache=True`` (``data.device_cache``): the train split's cache is moved to the training device
  once, the train loader yields :class:`~mtlswin.data.device_cache.BatchRequest` s (positions and
  augmentation draws), and :meth:`on_after_batch_transfer` builds each batch on the device
  (:mod:`mtlswin.data.device_cache`). Validation keeps the CPU loader (no augmentation, once per epoch).

Lightning asks for the loaders inside ``fit`` (after DDP has started), so the DDP-aware sampler sees the
right rank and world size.
"""

from __future__ import annotations

import math
from typing import Any

from torch.utils.data import DataLoader

from mtlswin.data.datamodule import CTDataModule
from mtlswin.data.device_cache import BatchRequest, DeviceSlices, PositionDataset
from mtlswin.training.resume import ResumableTrainLoader, TrainPosition

__all__ = ["TrainingData"]


class TrainingData(CTDataModule):
    """:class:`CTDataModule` with a resumable train loader and the optional device cache; same constructor
    plus ``device_cache``."""

    def __init__(self, *args, device_cache: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if device_cache and self.cache_dir is None:
            raise ValueError("data.device_cache needs data.cache_dir (the cache is what goes to the device)")
        self.device_cache = bool(device_cache)
        self.position = TrainPosition(None)
        self._on_device: DeviceSlices | None = None

    def train_dataloader(self) -> ResumableTrainLoader:
        base = self._request_loader() if self.device_cache else super().train_dataloader()
        loader = ResumableTrainLoader(base, lambda: self.trainer.current_epoch)
        self.position.loader = loader
        return loader

    def _request_loader(self) -> DataLoader:
        """Batches of positions + draws, made in the main process (no pixels move: no workers needed)."""
        ds = self.dataset("train", augment=True)
        positions = PositionDataset(ds)
        return DataLoader(positions, batch_size=self.batch_size, sampler=self.train_sampler_for(ds),
                          num_workers=0, collate_fn=positions.collate)  # fmt: skip

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """A :class:`BatchRequest` becomes the training batch, built on the model's device; other batches pass."""
        if not isinstance(batch, BatchRequest):
            return batch
        device = self.trainer.lightning_module.device
        if self._on_device is None or self._on_device.device != device:
            self._on_device = DeviceSlices(self.dataset("train", augment=True), device)
        return self._on_device.batch(batch)

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """Train batches per epoch on each of ``world_size`` ranks (ResumableSampler pads to equal shares)."""
        n = len(self.dataset("train", augment=True))
        return math.ceil(math.ceil(n / world_size) / self.batch_size)
