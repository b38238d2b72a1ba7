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
