"""The counterfactual twins of a split: the same slices with the spurious cue flipped (``manifest.twin`` column).

The phantom writes, for a slice, its twin with the cue flipped and everything else identical (``mtlswin synth
--twins``). The evaluation's cue test (:mod:`mtlswin.evaluation.counterfactual`) scores the twins, and the
explanation audit (:mod:`mtlswin.explain.collect`) takes the pixels where a slice and its twin differ as the
slice's cue region; both read them through :func:`twin_loader`.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from mtlswin.data.cache import build_cache
from mtlswin.data.dataset import BatchedSlices, SliceDataset, collate_slices

__all__ = ["twin_loader"]


def twin_loader(dm: Any, split: str) -> DataLoader | None:
    """A loader over the twins of ``split``'s slices (same row index as the slices), or None without twins."""
    dm.setup()
    rows = dm.manifest.twin_rows(dm.indices(split))
    if not rows:
        return None
    twins = dm.manifest.twins()
    cache = None
    if dm.cache_dir is not None:
        cache = build_cache(twins, dm.cache_dir, dm.img_size, dm.cache_dtype, dm.window, dm.num_workers)
    dataset = SliceDataset(twins, rows, img_size=dm.img_size, augment="none", window=dm.window, cache=cache)
    return DataLoader(
        BatchedSlices(dataset), batch_size=dm.eval_batch_size, shuffle=False, num_workers=0, collate_fn=collate_slices
    )
