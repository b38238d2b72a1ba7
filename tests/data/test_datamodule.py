"""SliceDataset / CTDataModule: the batch contract, reproducible augmentation, resume, learnable signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlswin.data.datamodule import CTDataModule, parse_window
from mtlswin.data.manifest import read_manifest
from mtlswin.data.splits import write_splits


def _dm(tiny_data, **kw):
    args = {"img_size": 32, "batch_size": 8, "num_workers": 0} | kw
    dm = CTDataModule(tiny_data.manifest, tiny_data.splits, **args)
    dm.setup()
    return dm


def test_batch_matches_contract(tiny_data):
    dm = _dm(tiny_data, img_size=48)
    batch = next(iter(dm.dataloader("train")))
    n = 8
    assert batch["image"].shape == (n, 1, 48, 48) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["label"].shape == (n,) and batch["label"].dtype == torch.long
    assert batch["mask"].shape == (n, 48, 48) and batch["mask"].dtype == torch.long
    assert batch["has_mask"].dtype == torch.bool
    assert batch["labels"].shape == (n, 4) and batch["labels"].dtype == torch.float32
    assert batch["hospital"].dtype == torch.long and batch["index"].dtype == torch.long
    assert isinstance(batch["patient_id"], list) and len(batch["patient_id"]) == n
    assert batch["cue"].dtype == torch.long
    # values agree with the manifest row by row
    table = pd.read_csv(tiny_data.manifest, keep_default_na=False)
    for j, idx in enumerate(batch["index"].tolist()):
        row = table.iloc[idx]
        assert batch["label"][j] == row["hypodensity"] and batch["hospital"][j] == row["hospital"]
        assert batch["patient_id"][j] == row["patient_id"] and batch["cue"][j] == row["cue"]
        assert batch["labels"][j].tolist() == [row[m] for m in tiny_data.markers]
        assert bool(batch["has_mask"][j]) == (row["mask"] != "")
        assert (batch["mask"][j].sum() > 0) == (row["mask"] != "")
    assert set(batch["mask"].unique().tolist()) <= {0, 1}


def test_splits_are_disjoint_and_complete(tiny_data):
    dm = _dm(tiny_data)
    seen = [set(dm.indices(s)) for s in ("train", "val", "test_a", "test_b")]
    assert sum(map(len, seen)) == len(set().union(*seen))
    assert len(dm.dataset("val")) == len(seen[1])
    assert "test_a" in dm.summary() and "rate" in dm.summary()


def _epoch_batches(dm, epoch):
    loader = dm.train_dataloader()
    dm.train_sampler.set_epoch(epoch)
    return [b["image"] for b in loader]


def test_augmentation_independent_of_workers_and_resume(tiny_data):
    a = _epoch_batches(_dm(tiny_data, num_workers=0), 1)
    b = _epoch_batches(_dm(tiny_data, num_workers=2), 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = _epoch_batches(_dm(tiny_data, num_workers=0), 2)
    assert not torch.equal(torch.cat(a), torch.cat(c))  # another epoch, another draw
    dm = _dm(tiny_data, num_workers=0)
    loader = dm.train_dataloader()
    dm.train_sampler.set_epoch(1)
    dm.train_sampler.set_start(16)  # resume after two batches of 8
    resumed = [b["image"] for b in loader]
    assert torch.equal(torch.cat(resumed), torch.cat(a)[16:])


def test_persistent_workers_see_new_epoch(tiny_data):
    dm = _dm(tiny_data, num_workers=2, augment="paper")
    loader = dm.train_dataloader()
    out = []
    for epoch in (0, 1, 0):
        dm.train_sampler.set_epoch(epoch)
        out.append({int(i): img for b in loader for i, img in zip(b["index"], b["image"])})
    assert all(torch.equal(out[0][k], out[2][k]) for k in out[0])
    assert sum(not torch.equal(out[0][k], out[1][k]) for k in out[0]) > len(out[0]) // 2


def test_non_persistent_workers_see_new_epoch(tiny_data):
    """``SliceDataset.set_epoch`` reaches workers of a plain DataLoader too (workers restart per epoch)."""
    from torch.utils.data import DataLoader

    from mtlswin.data.dataset import SliceDataset

    ds = SliceDataset(read_manifest(tiny_data.manifest), list(range(16)), img_size=32, augment="paper", seed=1)
    loader = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=False)
    images = []
    for epoch in (3, 4):
        ds.set_epoch(epoch)
        images.append(next(iter(loader))["image"])
    expected = torch.stack([ds[i]["image"] for i in range(16)])  # main process, epoch 4
    assert torch.equal(images[1], expected) and not torch.equal(images[0], images[1])


def test_cache_gives_same_batches(tiny_data, tmp_path):
    plain = next(iter(_dm(tiny_data).dataloader("val")))
    cached_dm = _dm(tiny_data, cache_dir=tmp_path / "cache", num_workers=2)
    cached = next(iter(cached_dm.dataloader("val")))
    assert cached_dm.cache is not None
    assert torch.allclose(plain["image"], cached["image"], atol=0.5 / 255 + 1e-6)
    assert torch.equal(plain["mask"], cached["mask"]) and torch.equal(plain["has_mask"], cached["has_mask"])


@pytest.mark.parametrize("order", ["prepare_then_setup", "setup_then_prepare"])
def test_a_process_reads_the_manifest_and_finds_its_cache_once(tiny_data, tmp_path, monkeypatch, order):
    """``prepare_data`` and ``setup`` in one process (``train`` calls ``setup`` first, for the input
    statistics; Lightning then calls both) read the manifest and hash its files once, and set up the same
    cache as a module that only ran ``setup``."""
    from mtlswin.data import datamodule as dm_mod

    cache_dir = tmp_path / "cache"
    _dm(tiny_data, cache_dir=cache_dir)  # built once, so that both orders find it
    reads = []
    real_find = dm_mod.find_cache
    monkeypatch.setattr(dm_mod, "find_cache", lambda *a, **k: (reads.append(1), real_find(*a, **k))[1])
    dm = CTDataModule(tiny_data.manifest, tiny_data.splits, img_size=32, batch_size=8, cache_dir=cache_dir)
    calls = [dm.prepare_data, dm.setup] if order == "prepare_then_setup" else [dm.setup, dm.prepare_data]
    for call in calls:
        call()
    dm.setup()
    assert len(reads) == 1
    fresh = _dm(tiny_data, cache_dir=cache_dir)
    assert dm.cache is not None and dm.cache.path == fresh.cache.path
    assert dm.indices("train") == fresh.indices("train") and dm.manifest.table.equals(fresh.manifest.table)
    assert dm._prepared is None  # setup let go of prepare_data's read


def test_tiny_data_is_learnable(tiny_data):
    """A linear model on pixels beats the majority class on held-out slices."""
    from sklearn.linear_model import LogisticRegression

    dm = _dm(tiny_data, batch_size=64)
    train = next(iter(dm.dataloader("train")))
    held = [next(iter(dm.dataloader(s))) for s in ("val", "test_a", "test_b")]
    x_te = torch.cat([b["image"] for b in held]).flatten(1).numpy()
    y_te = torch.cat([b["label"] for b in held]).numpy()
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(train["image"].flatten(1).numpy(), train["label"].numpy())
    acc = (clf.predict(x_te) == y_te).mean()
    majority = max(y_te.mean(), 1 - y_te.mean())
    assert acc > majority, (acc, majority)


def test_split_with_test_b_patient_in_train_is_refused(tiny_data, tmp_path):
    table = read_manifest(tiny_data.manifest).table
    splits = pd.read_csv(tiny_data.splits)
    b_row = int(splits.loc[splits.split == "test_b", "index"].iloc[0])
    same_patient = table.index[(table.patient_id == table.at[b_row, "patient_id"]) & (table.index != b_row)]
    splits = splits[~splits["index"].isin(same_patient)]
    extra = pd.DataFrame({"index": same_patient[:1], "split": "train"})
    bad = write_splits(pd.concat([splits, extra]), tmp_path / "bad_splits.csv")
    dm = CTDataModule(tiny_data.manifest, bad, img_size=32, num_workers=0)
    with pytest.raises(ValueError, match=r"patient\(s\) of test_b also in train: \['h[56]_p\d+'\]"):
        dm.setup()


def test_bad_arguments():
    assert parse_window("40,80") == (40.0, 80.0) and parse_window([50, 100]) == (50.0, 100.0)
    assert parse_window("file") == "file"
    with pytest.raises(ValueError, match="window"):
        parse_window("brain")
    with pytest.raises(ValueError, match="augment must be one of"):
        CTDataModule("m.csv", "s.csv", augment="heavy")
    assert np.isfinite(parse_window((40, 80))[0])


# The mask budget (data.mask_fraction): whole train patients keep or lose their masks.


def test_kept_masks_keeps_whole_patients_near_the_target_and_nests():
    from mtlswin.data.mask_budget import kept_masks

    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, 60)  # 60 patients of 1-8 masked slices, plus unmasked slices
    pid = np.repeat([f"p{j:02d}" for j in range(60)], sizes + 2)
    has = np.concatenate([np.r_[np.ones(s, bool), np.zeros(2, bool)] for s in sizes])
    total, kept = has.sum(), {}
    for f in (1.0, 0.3, 0.1, 0.0):
        keep = kept_masks(pid, has, f, seed=5)
        kept[f] = set(pid[keep])
        assert not (keep & ~has).any()  # only rows with a mask can keep one
        assert abs(keep.sum() - f * total) <= sizes.max() / 2  # within (half) a patient of the target
        for p in set(pid[has]):  # whole patients: all of a patient's masks or none
            assert len(set(keep[(pid == p) & has])) == 1
    assert kept_masks(pid, has, 1.0, seed=5).tolist() == has.tolist() and kept[0.0] == set()
    assert kept[0.1] <= kept[0.3] <= kept[1.0]  # the same seed nests the budgets (a sweep)
    assert (kept_masks(pid, has, 0.3, seed=5) == kept_masks(pid, has, 0.3, seed=5)).all()
    assert set(pid[kept_masks(pid, has, 0.3, seed=6)]) != kept[0.3]
    order = rng.permutation(len(pid))  # independent of the row order
    assert set(pid[order][kept_masks(pid[order], has[order], 0.3, seed=5)]) == kept[0.3]
    with pytest.raises(ValueError, match="mask_fraction"):
        kept_masks(pid, has, 1.5, seed=0)


@pytest.fixture(scope="module")
def budget_data(tmp_path_factory):
    """A larger tiny data set (320 slices, many masked train patients) for the mask budget."""
    from data_fixtures import make_tiny_data

    return make_tiny_data(tmp_path_factory.mktemp("budget"), n=320, size=32, seed=1)


def _has_mask(ds) -> np.ndarray:
    return np.array([bool(ds[i]["has_mask"]) for i in range(len(ds))])


@pytest.mark.parametrize("fraction", [1.0, 0.3, 0.1])
def test_mask_budget_hides_train_masks_of_whole_patients(budget_data, fraction):
    full = _dm(budget_data)
    dm = _dm(budget_data, mask_fraction=fraction, seed=2)
    train, train_full = dm.dataset("train"), full.dataset("train")
    before, after = _has_mask(train_full), _has_mask(train)
    pid = np.array(train.patient_id)
    sizes = pd.Series(pid[before]).value_counts()
    assert len(sizes) >= 15 and not (after & ~before).any()
    assert abs(after.sum() - fraction * before.sum()) <= sizes.max()  # within one patient of the target
    for p in sizes.index:  # whole patients keep or lose their masks
        assert len(set(after[(pid == p) & before])) == 1
    hidden = np.isin(train.indices, dm.hidden_masks())
    assert (hidden == (before & ~after)).all()
    for i in np.flatnonzero(hidden)[:3]:  # a hidden mask is an unknown one: all zeros, as without a mask file
        assert int(train[i]["mask"].sum()) == 0 and int(train_full[i]["mask"].sum()) > 0
    for split in ("val", "test_a"):  # evaluation splits keep every mask
        assert (_has_mask(dm.dataset(split)) == _has_mask(full.dataset(split))).all() and dm.hidden_masks(split) == []
    if fraction == 1.0:  # identical to no budget
        assert dm.hidden_masks() == [] and (after == before).all()
        assert torch.equal(train[0]["mask"], train_full[0]["mask"])


def test_mask_budget_with_a_cache_and_bad_values(budget_data, tmp_path):
    plain = _dm(budget_data, mask_fraction=0.3)
    cached = _dm(budget_data, mask_fraction=0.3, cache_dir=tmp_path / "cache")
    assert (_has_mask(cached.dataset("train")) == _has_mask(plain.dataset("train"))).all()
    with pytest.raises(ValueError, match="mask_fraction must be in"):
        CTDataModule("m.csv", "s.csv", mask_fraction=-0.1)
    from mtlswin.training.datamodule import TrainingData

    on_device = TrainingData(budget_data.manifest, budget_data.splits, img_size=32, num_workers=0,
                             cache_dir=tmp_path / "cache", device_cache=True, mask_fraction=0.3)  # fmt: skip
    with pytest.raises(ValueError, match=r"mask_fraction < 1 does not work with data\.device_cache"):
        on_device.dataset("train")  # the device cache reads has_mask from the cache: refused, not ignored
