"""Pixel statistics of a split: the mean and standard deviation a model standardises its input with."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mtlswin.data.dataset import BatchedSlices, SliceDataset, collate_slices

__all__ = ["pixel_stats"]


def pixel_stats(dataset: torch.utils.data.Dataset, batch_size: int = 256) -> tuple[float, float]:
    """``(mean, std)`` over every pixel of every image of ``dataset`` (items with ``image (1, H, W)``, no
    augmentation), accumulated in float64; a ``ValueError`` for an empty or constant data set."""
    if len(dataset) == 0:
        raise ValueError("cannot compute pixel statistics of an empty split")
    total = total_sq = count = 0.0
    for images in _image_batches(dataset, batch_size):
        x = images.double()
        total += float(x.sum())
        total_sq += float((x * x).sum())
        count += x.numel()
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    if std <= 0:
        raise ValueError("the split's images are constant (std 0): input standardisation is undefined")
    return mean, std


def _image_batches(dataset: torch.utils.data.Dataset, batch_size: int) -> Iterator[torch.Tensor]:
    """The images of ``dataset`` in order, ``batch_size`` at a time: a :class:`SliceDataset` through
    :class:`BatchedSlices`, as the data module's loaders read it (each batch built at once: the same images as its
    items, without an item's per-slice work), any other dataset item by item."""
    batched = isinstance(dataset, SliceDataset)
    loader = torch.utils.data.DataLoader(
        BatchedSlices(dataset) if batched else dataset,
        batch_size=batch_size,
        num_workers=0,
        collate_fn=collate_slices if batched else None,
        generator=torch.Generator(),  # its own: each iterator draws a seed, which must not shift the global RNG
    )
    for batch in loader:
        yield batch["image"]
