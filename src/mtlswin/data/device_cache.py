"""A split of the cache held on the training device, and training batches built there (``data.device_cache``).

The paper-size train split (7,900 x 224 x 224 uint8 images + masks, ~800 MB) fits in a GPU many times
over. With ``data.device_cache: true`` the train loader yields only a :class:`BatchRequest` (the
samples' positions and their augmentation draws, made on the CPU in the main process: a few numbers
per sample); after Lightning has moved it to the device, :meth:`DeviceSlices.batch` gathers the
images and masks there and augments them with :func:`~mtlswin.data.device_augment.apply_batch`. No
worker decodes, augments or copies pixels, so the data path keeps up with the GPU.

The batches are those of the CPU loader (``SliceDataset`` + ``collate_slices``) for the same seed,
epoch and sampler order: same keys, dtypes and samples, same draws; the pixels equal the CPU path's
except for rare nearest-neighbour ties (see :mod:`mtlswin.data.device_augment`). The sampler is the
same :class:`~mtlswin.data.sampler.ResumableSampler`, so mid-epoch resume and DDP sharding work alike.
"""

from __future__ import annotations

import numpy as np
import torch

from mtlswin.data.cache import SliceCache
from mtlswin.data.dataset import SliceDataset
from mtlswin.data.device_augment import BatchDraws, apply_batch, draw_batch

__all__ = ["BatchRequest", "DeviceSlices", "PositionDataset"]


class BatchRequest:
    """What the train loader yields with a device cache: dataset positions ``(B,)`` and their draws.

    A plain class holding NumPy arrays, so Lightning's device transfer passes it through untouched.
    """

    __slots__ = ("draws", "positions")

    def __init__(self, positions: np.ndarray, draws: BatchDraws) -> None:
        self.positions, self.draws = positions, draws

    def __len__(self) -> int:  # Lightning may ask a batch for its size
        return len(self.positions)


class PositionDataset(torch.utils.data.Dataset):
    """``0..n-1``: what the sampler indexes; :meth:`collate` turns a list of positions into a :class:`BatchRequest`."""

    def __init__(self, dataset: SliceDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> int:
        return int(i)

    def collate(self, positions: list[int]) -> BatchRequest:
        ds = self.dataset
        pos = np.asarray(positions, dtype=np.int64)
        return BatchRequest(pos, draw_batch(ds.transform.policy, ds.seed, ds.epoch, ds.indices[pos]))


class DeviceSlices:
    """Every slice of a cached ``SliceDataset`` as tensors on ``device`` (uint8 as stored, labels, ids)."""

    def __init__(self, dataset: SliceDataset, device: torch.device | str) -> None:
        if dataset.cache is None:
            raise ValueError("data.device_cache needs a cache: set data.cache_dir")
        self.dataset, self.device = dataset, torch.device(device)
        images, masks, has_mask = dataset.cache.stored(dataset.indices)
        if dataset.binary_mask:
            masks = (masks > 0).view(np.uint8)

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

        self.images, self.masks, self.has_mask = put(images), put(masks), put(has_mask)
        self.label, self.labels = put(dataset.target), put(dataset.labels)
        self.hospital, self.index = put(dataset.hospital), put(dataset.indices)
        self.cue = put(dataset.cue) if dataset.cue is not None else None

    def batch(self, request: BatchRequest) -> dict:
        """The training batch of ``request``, built and augmented on the device (keys of ``collate_slices``)."""
        pos = torch.as_tensor(request.positions, device=self.device)
        images = SliceCache.to_float(self.images[pos])[:, None]
        images, masks = apply_batch(images, self.masks[pos], request.draws)
        batch = {
            "image": images,
            "label": self.label[pos],
            "mask": masks.long(),
            "has_mask": self.has_mask[pos],
            "labels": self.labels[pos],
            "hospital": self.hospital[pos],
            "patient_id": [self.dataset.patient_id[int(i)] for i in request.positions],
            "index": self.index[pos],
        }
        if self.cue is not None:
            batch["cue"] = self.cue[pos]
        return batch
