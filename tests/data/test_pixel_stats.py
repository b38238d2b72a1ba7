"""Input statistics of a split: what a model standardises its input with (``data.normalize: train-stats``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlswin.data.datamodule import CTDataModule
from mtlswin.data.stats import pixel_stats


class _Items(torch.utils.data.Dataset):
    """Any dataset of items (not a SliceDataset): pixel_stats reads it through a DataLoader."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("cached", [False, True])
def test_stats_of_a_slice_dataset_built_a_batch_at_a_time_equal_its_items(tiny_data, tmp_path, cached):
    data = CTDataModule(tiny_data.manifest, tiny_data.splits, img_size=32, num_workers=0,
                        cache_dir=tmp_path / "cache" if cached else None)  # fmt: skip
    slices = data.dataset("train", augment=False)
    items = [slices[i] for i in range(len(slices))]
    pixels = np.stack([item["image"].numpy() for item in items]).astype(np.float64)
    for batch_size in (7, 256):  # a last, smaller batch; one batch
        mean, std = pixel_stats(slices, batch_size=batch_size)
        assert (mean, std) == pixel_stats(_Items(items), batch_size=batch_size)
        assert mean == pytest.approx(pixels.mean(), abs=1e-12) and std == pytest.approx(pixels.std(), abs=1e-12)
    assert 0.05 < mean < 0.95 and std > 0.01


def test_stats_of_no_images_or_constant_images_are_refused():
    with pytest.raises(ValueError, match="empty split"):
        pixel_stats(_Items([]))
    with pytest.raises(ValueError, match="constant"):
        pixel_stats(_Items([{"image": torch.full((1, 4, 4), 0.5)} for _ in range(3)]))
