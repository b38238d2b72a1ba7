"""Pixel statistics of a split: the mean and standard deviation a model standardises its input with."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["pixel_stats"]


def pixel_stats(dataset: torch.utils.data.Dataset, batch_size: int = 256) -> tuple[float, float]:
    """``(mean, std)`` over every pixel of every image of ``dataset`` (items with ``image (1, H, W)``, no
    augmentation), accumulated in float64; a ``ValueError`` for an empty or constant data set."""
    if len(dataset) == 0:
        raise ValueError("cannot compute pixel statistics of an empty split")
    total = total_sq = count = 0.0
    # a generator of its own: each iterator draws a seed, which must not come from (and shift) the global RNG
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0, generator=torch.Generator())
    for batch in loader:
        x = batch["image"].double()
        total += float(x.sum())
        total_sq += float((x * x).sum())
        count += x.numel()
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    if std <= 0:
        raise ValueError("the split's images are constant (std 0): input standardisation is undefined")
    return mean, std
