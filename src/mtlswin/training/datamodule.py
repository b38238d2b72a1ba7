"""``TrainingData``: the data module a training run uses (a :class:`~mtlswin.data.datamodule.CTDataModule`).

It adds what only training needs, so that ``mtlswin.data`` does not import ``mtlswin.training``:

- the train loader wrapped in :class:`~mtlswin.training.resume.ResumableTrainLoader`, whose position
  (epoch, batches done) the :class:`~mtlswin.training.resume.TrainPosition` callback ``position`` saves in
  every checkpoint, so a resumed run continues mid-epoch with the same batches;
- :meth:`batches_per_epoch`, which the LR schedule reads to turn epochs into optimiser steps.

Lightning asks for the loaders inside ``fit`` (after DDP has started), so the DDP-aware sampler sees the
right rank and world size.
"""

from __future__ import annotations

import math

from mtlswin.data.datamodule import CTDataModule
from mtlswin.training.resume import ResumableTrainLoader, TrainPosition

__all__ = ["TrainingData"]


class TrainingData(CTDataModule):
    """:class:`CTDataModule` with a resumable train loader; same constructor."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.position = TrainPosition(None)

    def train_dataloader(self) -> ResumableTrainLoader:
        loader = ResumableTrainLoader(super().train_dataloader(), lambda: self.trainer.current_epoch)
        self.position.loader = loader
        return loader

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """Train batches per epoch on each of ``world_size`` ranks (ResumableSampler pads to equal shares)."""
        n = len(self.dataset("train", augment=True))
        return math.ceil(math.ceil(n / world_size) / self.batch_size)
