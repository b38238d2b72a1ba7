"""``CTDataModule``: manifest + splits (+ cache) -> DataLoaders (constructor as in docs/contracts.md).

``setup()`` reads and validates the manifest (all problems at once; ``on_bad_row``), reads the
splits CSV, refuses test-B patients seen in train/val (:func:`splits.check_splits`) and, with
``cache_dir``, opens (or builds, if ``prepare_data`` did not) the memory-mapped cache. ``train_dataloader()`` uses a
:class:`ResumableSampler` (the trainer should set ``use_distributed_sampler=False``); its
``set_epoch`` (called by Lightning each epoch) also sets the dataset's epoch for the
(seed, epoch, index) augmentation draw. ``val_dataloader()`` gives each DDP rank its own share of
the validation split, without padding, so that synced metrics see every slice once.

``mask_fraction`` < 1 (the mask budget, :mod:`mtlswin.data.mask_budget`): only that share of the TRAIN
split's masked slices keep their mask (whole patients, chosen with ``seed``); the others' masks are
unknown (``has_mask`` False). Validation and test splits keep every mask.

``order_seed`` and ``augment_seed`` (default: ``seed``) seed the batch order and the augmentation draws apart
from ``seed``, which then only chooses the mask budget's patients (``train.rng``, :mod:`mtlswin.training.streams`).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pandas as pd
from torch.utils.data import DataLoader

from mtlswin.data.cache import SliceCache, build_cache, find_cache
from mtlswin.data.dataset import BatchedSlices, SliceDataset, collate_slices
from mtlswin.data.manifest import Manifest, read_manifest, write_skipped
from mtlswin.data.mask_budget import kept_masks
from mtlswin.data.readers import Window
from mtlswin.data.sampler import ResumableSampler
from mtlswin.data.splits import SPLITS, check_splits, read_splits, split_table
from mtlswin.data.transforms import POLICIES


def parse_window(window) -> Window:
    """``(40, 80)``, ``[40, 80]``, ``"40,80"`` -> ``(40.0, 80.0)``; ``"file"`` stays ``"file"``."""
    if isinstance(window, str):
        if window == "file":
            return "file"
        window = window.split(",")
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError) as err:
        raise ValueError(f"window must be 'file' or (center, width) in HU such as (40, 80), got {window!r}") from err
    if width <= 0:
        raise ValueError(f"window width must be > 0 HU, got {width}")
    return center, width


class CTDataModule(L.LightningDataModule):
    """Data for one run; see the module docstring and docs/contracts.md."""

    def __init__(
        self,
        manifest: str | Path,
        splits: str | Path,
        target: str = "hypodensity",
        img_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        augment: str = "paper",
        window: Window | list | str = (40, 80),
        cache_dir: str | Path | None = None,
        cache_dtype: str = "uint8",
        on_bad_row: str = "error",
        seed: int = 0,
        eval_batch_size: int | None = None,
        mask_fraction: float = 1.0,
        order_seed: int | None = None,
        augment_seed: int | None = None,
    ):
        super().__init__()
        if not 0.0 <= mask_fraction <= 1.0:
            raise ValueError(f"mask_fraction must be in [0, 1] (1 = every train mask), got {mask_fraction}")
        if augment not in POLICIES:
            raise ValueError(f"augment must be one of {POLICIES}, got {augment!r}")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
        self.manifest_path, self.splits_path = Path(manifest), Path(splits)
        self.target, self.img_size, self.augment = target, int(img_size), augment
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.window = parse_window(window)
        self.cache_dir, self.cache_dtype = cache_dir, cache_dtype
        self.on_bad_row, self.seed = on_bad_row, int(seed)
        self.order_seed = self.seed if order_seed is None else int(order_seed)  # the samplers' shuffling
        self.augment_seed = self.seed if augment_seed is None else int(augment_seed)  # the (seed, epoch, index) draws
        self.mask_fraction = float(mask_fraction)
        self.manifest: Manifest | None = None
        self.splits: pd.DataFrame | None = None
        self.cache: SliceCache | None = None
        self.train_sampler: ResumableSampler | None = None
        self._datasets: dict[tuple[str, bool], SliceDataset] = {}
        self._prepared: tuple[Manifest, SliceCache | None] | None = None  # prepare_data's read, for setup

    def _read(self) -> tuple[Manifest, SliceCache | None]:
        """The validated manifest and its cache (built if missing).

        Checking every file of a manifest opens each one (seconds for thousands of DICOMs); when the cache
        of exactly these rows and file contents exists, its build already decoded every file, so the
        manifest is read without the per-file checks (values, columns and duplicates are still checked).
        """
        if self.cache_dir is not None:
            quick = read_manifest(self.manifest_path, self.target, self.on_bad_row, check_files=False)
            cache = find_cache(quick, self.cache_dir, self.img_size, self.cache_dtype, self.window)
            if cache is not None:
                return quick, cache
        manifest = read_manifest(self.manifest_path, self.target, self.on_bad_row)
        if self.cache_dir is None:
            return manifest, None
        cache = build_cache(manifest, self.cache_dir, self.img_size, self.cache_dtype, self.window, self.num_workers)
        return manifest, cache

    def prepare_data(self) -> None:
        """Build the cache once (Lightning calls this on one process only); ``setup`` then opens it. In the
        process that prepared, ``setup`` takes what this read instead of reading it again, and once ``setup``
        has read (and built) it there is nothing left to prepare."""
        if self.cache_dir is not None and self.manifest is None and self._prepared is None:
            self._prepared = self._read()

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is not None:
            return
        self.manifest, self.cache = self._prepared or self._read()
        self._prepared = None
        self.splits = read_splits(self.splits_path, self.manifest.table)
        check_splits(self.manifest.table, self.splits)

    @property
    def markers(self) -> tuple[str, ...]:
        self.setup()
        return self.manifest.markers

    def indices(self, split: str) -> list[int]:
        """Manifest rows (0-based) of ``split``."""
        self.setup()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.splits.loc[self.splits["split"] == split, "index"].tolist()

    def hidden_masks(self, split: str = "train") -> list[int]:
        """Rows of ``split`` whose mask the mask budget hides (always none outside ``train``)."""
        self.setup()
        if split != "train" or self.mask_fraction >= 1.0:
            return []
        rows = self.indices(split)
        has_mask = [path is not None for path in self.manifest.mask_paths(rows)]
        patients = self.manifest.table.loc[rows, "patient_id"].astype(str).tolist()
        kept = kept_masks(patients, has_mask, self.mask_fraction, self.seed)
        return [r for r, m, k in zip(rows, has_mask, kept) if m and not k]

    def dataset(self, split: str, augment: bool = False) -> SliceDataset:
        """The dataset of ``split``, augmented with the module's policy when ``augment``."""
        self.setup()
        key = (split, bool(augment))
        if key not in self._datasets:
            hidden = self.hidden_masks(split)
            if hidden and getattr(self, "device_cache", False):  # DeviceSlices reads has_mask from the cache
                raise ValueError("data.mask_fraction < 1 does not work with data.device_cache yet; set one of them off")
            self._datasets[key] = SliceDataset(
                self.manifest,
                self.indices(split),
                img_size=self.img_size,
                augment=self.augment if augment else "none",
                window=self.window,
                cache=self.cache,
                seed=self.augment_seed,
                compact=True,  # uint8 masks through the workers; collate_slices makes them int64
                hidden_masks=hidden,
            )
        return self._datasets[key]

    def dataloader(self, split: str, shuffle: bool = False, augment: bool = False, shard: bool = False) -> DataLoader:
        """A loader over any split (eval batch size; shuffling seeded by ``order_seed``).

        ``shard``: under DDP, this rank's share of the split, every sample on exactly one rank (no
        padding); metrics that sync across ranks (torchmetrics) then see each sample once.
        """
        ds = self.dataset(split, augment)
        replicas = {"pad": False} if shard else {"num_replicas": 1, "rank": 0}
        sampler = ResumableSampler(len(ds), self.order_seed, shuffle=shuffle, **replicas)
        sampler.add_epoch_listener(ds.set_epoch)
        return self._loader(ds, self.eval_batch_size, sampler)

    def _loader(self, ds: SliceDataset, batch_size: int, sampler: ResumableSampler) -> DataLoader:
        return DataLoader(
            BatchedSlices(ds),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_slices,
        )

    def train_sampler_for(self, ds: SliceDataset) -> ResumableSampler:
        """A new shuffling, DDP-aware train sampler over ``ds`` (kept as ``train_sampler``), which also sets the
        dataset's epoch for the augmentation draw."""
        self.train_sampler = ResumableSampler(len(ds), self.order_seed, shuffle=True)
        self.train_sampler.add_epoch_listener(ds.set_epoch)
        return self.train_sampler

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train", augment=True)
        return self._loader(ds, self.batch_size, self.train_sampler_for(ds))

    def val_dataloader(self) -> DataLoader:
        """The validation split, sharded across DDP ranks (the metrics gather it back whole)."""
        return self.dataloader("val", shard=True)

    def test_dataloader(self) -> list[DataLoader]:
        """``[test_a, test_b]`` (Lightning's dataloader_idx 0 and 1)."""
        return [self.dataloader("test_a"), self.dataloader("test_b")]

    def write_skipped(self, run_dir: str | Path) -> Path | None:
        """Write ``run_dir/skipped_rows.csv`` if ``on_bad_row="skip"`` dropped rows."""
        self.setup()
        return write_skipped(self.manifest, run_dir)

    def summary(self) -> str:
        """The split table (slices, positives, rate, patients, hospitals per split)."""
        self.setup()
        return split_table(self.manifest.table, self.splits, self.target)
