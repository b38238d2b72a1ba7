"""SliceDataset.batch / BatchedSlices: a batch built at once equals its items collated, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlswin.data.cache import build_cache
from mtlswin.data.dataset import BatchedSlices, SliceDataset, collate_slices
from mtlswin.data.manifest import read_manifest


def _assert_same_batch(built: dict, expected: dict) -> None:
    assert list(built) == list(expected)
    for key, value in expected.items():
        if isinstance(value, torch.Tensor):
            assert built[key].dtype == value.dtype and built[key].shape == value.shape, key
            assert torch.equal(built[key], value), key
        else:
            assert built[key] == value, key


@pytest.fixture(scope="module")
def manifest(tiny_data):
    return read_manifest(tiny_data.manifest)


@pytest.fixture(scope="module", params=["uint8", "float16"])
def cache(request, manifest, tmp_path_factory):
    return build_cache(manifest, tmp_path_factory.mktemp(request.param), 32, request.param, (40, 80))


@pytest.mark.parametrize("policy", ["paper", "authors", "none"])
@pytest.mark.parametrize("binary_mask", [True, False])
def test_a_built_batch_equals_its_items_collated(manifest, cache, policy, binary_mask):
    rows = list(range(0, 64, 2))
    with_mask = [r for r in rows if manifest.mask_path(r) is not None]
    hidden = with_mask[:3]  # the mask budget's unknown masks
    ds = SliceDataset(manifest, rows, img_size=32, augment=policy, cache=cache, seed=3, compact=True,
                      binary_mask=binary_mask, hidden_masks=hidden)  # fmt: skip
    plain = SliceDataset(manifest, rows, img_size=32, augment="none", cache=cache, seed=3, compact=True)
    positions = np.random.default_rng(0).permutation(len(rows))[:20].tolist()
    for epoch in (0, 5):
        ds.set_epoch(epoch)
        built = ds.batch(positions)
        _assert_same_batch(built, collate_slices([ds[i] for i in positions]))
        moved = (built["image"] != plain.batch(positions)["image"]).flatten(1).any(1)
        assert int(moved.sum()) >= (8 if policy != "none" else 0) and (policy != "none" or not moved.any())
    hidden_here = np.isin(ds.indices[positions], hidden)
    assert hidden_here.any() and not built["has_mask"][torch.from_numpy(hidden_here)].any()
    assert built["mask"][torch.from_numpy(hidden_here)].sum() == 0
    assert built["has_mask"].any() and built["mask"].sum() > 0


def test_without_a_cache_the_batch_is_built_item_by_item(manifest):
    ds = SliceDataset(manifest, list(range(24)), img_size=32, augment="paper", seed=1, compact=True)
    ds.set_epoch(2)
    positions = [5, 0, 17, 3]
    _assert_same_batch(ds.batch(positions), collate_slices([ds[i] for i in positions]))


def test_loader_workers_give_the_batches_of_the_main_process(manifest, cache):
    """Through a DataLoader with 2 workers (batches built in shared memory) as in the main process."""
    from torch.utils.data import DataLoader

    ds = SliceDataset(manifest, list(range(40)), img_size=32, augment="paper", cache=cache, seed=4, compact=True)
    ds.set_epoch(1)
    order = np.random.default_rng(1).permutation(40).tolist()
    loader = DataLoader(BatchedSlices(ds), batch_size=16, sampler=order, num_workers=2, collate_fn=collate_slices)
    batches = list(loader)
    assert [len(b["index"]) for b in batches] == [16, 16, 8]
    for k, b in enumerate(batches):
        _assert_same_batch(b, collate_slices([ds[i] for i in order[16 * k : 16 * (k + 1)]]))
    assert len(BatchedSlices(ds)) == 40 and BatchedSlices(ds)[7]["index"] == ds[7]["index"]
