"""``SliceDataset``: manifest rows -> the batch dict of docs/contracts.md.

One item (the DataLoader's default collate stacks them into a batch)::

    image     (1, S, S) float32 in [0, 1]   windowed slice, augmented, resized to img_size S
    label     ()        int64               target marker (0/1)
    mask      (S, S)    int64 (uint8 item   1 = hematoma (any label > 0 of the mask file), 0 elsewhere;
              with compact=True)    all zeros when the slice has no mask
    has_mask  ()        bool                False also for rows in ``hidden_masks`` (mask budget: mask unknown)
    labels    (M,)      float32             all M marker columns, manifest order
    hospital  ()        int64
    patient_id          str
    index     ()        int64               0-based manifest data row
    cue       ()        int64               only when the manifest has a `cue` column (-1 = empty)

With ``compact=True`` the item's ``mask`` is uint8 and :func:`collate_slices` (the data module's
collate) turns the batch's mask into int64, so workers move 8x fewer mask bytes.

:meth:`SliceDataset.batch` builds a whole batch at once, equal bit for bit to collating its items, with a
fraction of the Python per slice; the data module's loaders read through :class:`BatchedSlices`, which hands
it to the DataLoader (``__getitems__``).

Augmentation draws are a pure function of (seed, epoch, index) (:func:`transforms.sample_rng`);
the epoch lives in a shared-memory tensor, so :meth:`SliceDataset.set_epoch` reaches DataLoader
workers, persistent or not. Without a cache, slices are decoded at full size, augmented, then
resized; with one, the cached (already resized) slices are augmented.

``hidden_masks`` (manifest rows; :mod:`mtlswin.data.mask_budget`): those rows' masks are treated as unknown,
``has_mask`` False and the mask all zeros, exactly like a row without a mask file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from mtlswin.data.cache import SliceCache
from mtlswin.data.manifest import Manifest
from mtlswin.data.readers import NonFiniteError, Window, load_mask, load_slice
from mtlswin.data.transforms import PairTransform, augment_arrays, draw_params, sample_rng


class SliceDataset(Dataset):
    """Slices of ``manifest`` at ``indices`` (0-based manifest data rows; default: all rows); the masks of
    ``hidden_masks`` rows are treated as unknown (see the module docstring)."""

    def __init__(
        self,
        manifest: Manifest,
        indices: Sequence[int] | None = None,
        img_size: int = 224,
        augment: str = "none",
        window: Window = (40, 80),
        cache: SliceCache | None = None,
        seed: int = 0,
        binary_mask: bool = True,
        compact: bool = False,
        hidden_masks: Sequence[int] | None = None,
    ):
        table = manifest.table
        self.indices = np.asarray(table.index if indices is None else indices, dtype=np.int64)
        missing = np.setdiff1d(self.indices, table.index.to_numpy())
        if len(missing):
            raise ValueError(f"indices not in manifest {manifest.path} (or skipped): {missing[:10].tolist()}")
        if cache is not None and cache.size != img_size:
            raise ValueError(f"cache {cache.path} holds {cache.size}px slices but img_size is {img_size}; rebuild it")
        rows = table.loc[self.indices]
        self.image_paths = manifest.image_paths(self.indices)
        self.mask_paths = manifest.mask_paths(self.indices)
        self.target = np.array(rows[manifest.target], dtype=np.int64)
        self.labels = np.array(rows[list(manifest.markers)], dtype=np.float32)  # writable copies for torch
        self.hospital = np.array(rows["hospital"], dtype=np.int64)
        self.patient_id = rows["patient_id"].astype(str).tolist()
        self.cue = np.array(rows["cue"], dtype=np.int64) if manifest.has_cue else None
        self.markers, self.window, self.cache = manifest.markers, window, cache
        self.seed, self.binary_mask, self.compact = int(seed), binary_mask, compact
        self.mask_hidden = np.isin(self.indices, np.asarray(hidden_masks if hidden_masks is not None else [], np.int64))
        self.transform = PairTransform(augment, img_size)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Epoch used in the augmentation draw; seen by all DataLoader workers."""
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Windowed image float32 (H, W) and mask uint8 (H, W) (binarised unless ``binary_mask=False``)."""
        idx = int(self.indices[i])
        if self.cache is not None:
            mask = self.cache.mask_u8(idx)
            has_mask = bool(self.cache.has_mask[self.cache.row_of[idx]])
            image = self.cache.image(idx)
        else:
            try:
                image = load_slice(self.image_paths[i], self.window)
                has_mask = self.mask_paths[i] is not None
                mask = load_mask(self.mask_paths[i]) if has_mask else np.zeros(image.shape, np.uint8)
            except NonFiniteError as err:  # found while training: name the row to fix or drop
                raise NonFiniteError(f"manifest row {idx + 1}: {err}") from err
            if mask.shape != image.shape:
                raise ValueError(f"{self.mask_paths[i]}: mask size {mask.shape} differs from image size {image.shape}")
        mask, has_mask = self._given_masks(mask, np.bool_(has_mask), self.mask_hidden[i])
        return image, mask, bool(has_mask)

    def _given_masks(
        self, masks: np.ndarray, has_mask: np.ndarray, hidden: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks and ``has_mask`` as items carry them, for one slice ``(H, W)`` or a batch ``(N, H, W)``: a mask the
        mask budget hides (``hidden``) is unknown, all zeros and marked absent, as if the row had none; then
        binarised, or clipped to uint8 with ``binary_mask=False``."""
        hidden = np.asarray(hidden, dtype=bool)
        if hidden.any():
            masks = np.where(hidden[..., None, None], 0, masks)
        has_mask = has_mask & ~hidden
        if self.binary_mask:
            return (masks > 0).view(np.uint8), has_mask
        return np.clip(masks, 0, 255).astype(np.uint8, copy=False), has_mask

    def __getitem__(self, i: int) -> dict:
        idx = int(self.indices[i])
        image, mask, has_mask = self._load(i)
        sample = {"image": torch.from_numpy(image)[None], "mask": torch.from_numpy(mask)}
        rng = sample_rng(self.seed, self.epoch, idx) if self.transform.policy != "none" else None
        sample = self.transform(sample, rng)
        item = {
            "image": sample["image"],
            "label": torch.tensor(self.target[i]),
            "mask": sample["mask"] if self.compact else sample["mask"].long(),
            "has_mask": torch.tensor(has_mask),
            "labels": torch.from_numpy(self.labels[i]),
            "hospital": torch.tensor(self.hospital[i]),
            "patient_id": self.patient_id[i],
            "index": torch.tensor(idx),
        }
        if self.cue is not None:
            item["cue"] = torch.tensor(self.cue[i])
        return item

    def batch(self, positions: Sequence[int]) -> dict:
        """The batch of dataset ``positions``: bit for bit ``collate_slices([self[i] for i in positions])``.

        With a cache it is built a batch at a time: one gather of the stored slices, the per-row values sliced
        from arrays, and only each slice's own augmentation draw (same generator, same order) done per slice.
        At the demo's 64 px this halves the loader's time a step (docs/speed.md). Without a cache, item by item.
        """
        if self.cache is None:
            return collate_slices([self[i] for i in positions])
        pos = np.asarray(positions, dtype=np.int64)
        idx = self.indices[pos]
        stored, masks, has_mask = self.cache.stored(idx)
        masks, has_mask = self._given_masks(masks, has_mask, self.mask_hidden[pos])
        size = stored.shape[1:]
        image = _batch_tensor((len(pos), 1, *size), torch.float32)
        images = image.numpy()[:, 0]
        images[...] = self.cache.as_float(stored)
        if self.transform.policy != "none":
            policy, p, max_angle, epoch = self.transform.policy, self.transform.p, self.transform.max_angle, self.epoch
            for b, index in enumerate(idx.tolist()):
                params = draw_params(policy, sample_rng(self.seed, epoch, index), p, max_angle)
                images[b], masks[b] = augment_arrays(images[b], masks[b], params)  # numpy copes with the overlap
        out = {
            "image": image,
            "label": torch.from_numpy(self.target[pos]),
            "has_mask": torch.from_numpy(has_mask),
            "labels": torch.from_numpy(self.labels[pos]),
            "hospital": torch.from_numpy(self.hospital[pos]),
            "patient_id": [self.patient_id[i] for i in pos.tolist()],
            "index": torch.from_numpy(idx),
        }
        if self.cue is not None:
            out["cue"] = torch.from_numpy(self.cue[pos])
        out["mask"] = _batch_tensor(masks.shape, torch.long).copy_(torch.from_numpy(masks))
        return out


class BatchedSlices(Dataset):
    """A :class:`SliceDataset` that a DataLoader reads a batch at a time: its ``__getitems__`` (the hook
    DataLoader calls with a batch's positions) returns :meth:`SliceDataset.batch`, which ``collate_slices``
    passes through. Use it with ``collate_fn=collate_slices``; ``slices`` is the dataset it reads."""

    def __init__(self, slices: SliceDataset):
        self.slices = slices

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int) -> dict:
        return self.slices[i]

    def __getitems__(self, positions: list[int]) -> dict:
        return self.slices.batch(positions)


def _batch_tensor(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """An empty batch tensor; in a DataLoader worker in shared memory, as ``default_collate`` allocates its own,
    so that sending it to the main process copies nothing."""
    out = torch.empty(0, dtype=dtype)
    if get_worker_info() is not None:
        out = out.new(out.untyped_storage()._new_shared(int(np.prod(shape)) * out.element_size()))
    return out.resize_(tuple(shape))


def collate_slices(items: list[dict] | dict) -> dict:
    """``default_collate``, then ``mask`` as int64: with ``SliceDataset(compact=True)`` items carry uint8
    masks, so a worker builds the batch's int64 mask once, straight in shared memory (as
    ``default_collate`` does for its own tensors), instead of per item. The batch is as in the contract.
    A batch already built (a dict, from :class:`BatchedSlices`) passes through unchanged."""
    if isinstance(items, dict):
        return items
    masks = [item["mask"] for item in items]
    batch = default_collate([{k: v for k, v in item.items() if k != "mask"} for item in items])
    stacked = torch.stack(masks)
    if stacked.dtype == torch.long:
        batch["mask"] = stacked
        return batch
    batch["mask"] = _batch_tensor(stacked.shape, torch.long).copy_(stacked)
    return batch
