"""`evaluate` scores the trap test set (test_trap) when the run's splits have it, twins included."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from training_helpers import tiny_config

from data_fixtures import make_tiny_data
from mtlswin.config import load_config
from mtlswin.data.splits import make_splits, write_splits
from mtlswin.evaluation.evaluate import default_splits, evaluate_run
from mtlswin.training.train import train


def test_default_splits_add_test_trap_only_when_present():
    assert default_splits({"train", "val", "test_a", "test_b"}) == ["test_a", "test_b"]  # as before
    assert default_splits({"train", "val", "test_a", "test_b", "test_trap"}) == ["test_a", "test_b", "test_trap"]
    assert default_splits({"test_trap", "test_b"}) == ["test_b", "test_trap"]


@pytest.fixture(scope="module")
def trap_data(tmp_path_factory):
    """The tiny data set plus a trap hospital 12: copies of hospital 1's first 12 slices with the cue flipped, each
    with a twin whose pixels are the slice's own (so a model's prediction on the twin is exactly its own)."""
    tiny = make_tiny_data(tmp_path_factory.mktemp("trap_tiny"), n=64, size=32, seed=0)
    table = pd.read_csv(tiny.manifest, keep_default_na=False)
    (tiny.root / "twins").mkdir()
    trap = table[table.hospital == 1].head(12).copy()
    for k, (i, row) in enumerate(trap.iterrows()):
        image, twin = f"images/trap_{k:03d}.png", f"twins/trap_{k:03d}.png"
        shutil.copy(tiny.root / row["image"], tiny.root / image)
        shutil.copy(tiny.root / row["image"], tiny.root / twin)
        trap.loc[i, ["image", "twin", "mask"]] = [image, twin, ""]
    trap["hospital"] = 12
    trap["patient_id"] = [f"h12_p{k // 4}" for k in range(len(trap))]
    trap["cue"] = 1 - trap["cue"]
    table["twin"] = ""
    table = pd.concat([table, trap], ignore_index=True)
    table.to_csv(tiny.manifest, index=False)
    splits = make_splits(table, "hypodensity", test_a_fraction=0.25, test_b_hospitals=(5, 6), seed=0)
    assert (splits.split == "test_trap").sum() == 12
    write_splits(splits, tiny.splits)
    return tiny


def test_evaluate_scores_test_trap_with_its_twins(trap_data, tmp_path):
    path = tiny_config(tmp_path, trap_data, "trap", train={"epochs": 1}, data={"augment": "none"},
                       trainer={"limit_train_batches": 1, "limit_val_batches": 1})  # fmt: skip
    run = train(load_config(path))
    results = evaluate_run(run, n_boot=50)
    assert list(results) == ["test_a", "test_b", "test_trap"]
    trap = results["test_trap"]
    assert trap["n"] == 12 and trap["n_twins"] == 12
    assert trap["cue_sensitivity"] == pytest.approx(0.0, abs=1e-6) and trap["cue_flip_rate"] == 0.0
    assert "auc" in trap and "group_acc" in trap and "iou" in trap
    pred = pd.read_csv(run / "predictions" / "test_trap.csv")
    assert len(pred) == 12 and (pred["prob_twin"] - pred["prob"]).abs().max() < 1e-6
    assert set(pd.read_csv(trap_data.manifest).loc[pred["index"], "hospital"]) == {12}
    assert set(json.loads((run / "metrics.json").read_text())) == {"test_a", "test_b", "test_trap"}
    assert "test_trap" not in evaluate_run(run, ["test_a"], n_boot=20)  # named splits: only those
