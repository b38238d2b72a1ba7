"""Deep Feature Reweighting: the balanced refit moves weight from the spurious to the core feature; the written
run folder's head is exactly the fitted one; end to end on the tiny data set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from mtlswin.config import config_from_dict, save_config
from mtlswin.models import create_model, load_model, save_model, test_overrides
from mtlswin.posthoc.dfr import (
    balanced_subsample,
    dfr_fit,
    dfr_run,
    extract_features,
    label_cue_groups,
    refit_head,
    worst_group_accuracy,
)
from mtlswin.runs import Run

# (label, cue) -> slices: the cue agrees with the label in 91% of the slices (the spurious correlation).
SIZES = {(0, 0): 300, (1, 1): 300, (0, 1): 30, (1, 0): 30}


def _spurious_problem(seed: int = 0):
    """Feature 0 = core (label + noise, sd 1); feature 1 = spurious (cue + small noise, sd 0.3)."""
    rng = np.random.default_rng(seed)
    label = np.concatenate([np.full(n, y) for (y, _), n in SIZES.items()])
    cue = np.concatenate([np.full(n, c) for (_, c), n in SIZES.items()])
    core = (2 * label - 1) * 0.7 + rng.normal(0, 1, len(label))
    spurious = (2 * cue - 1) * 1.0 + rng.normal(0, 0.3, len(label))
    return np.stack([core, spurious], axis=1), label, cue


def test_balanced_subsample_sizes():
    groups = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 5)
    idx = balanced_subsample(groups, np.random.default_rng(0))
    assert sorted(np.unique(groups[idx], return_counts=True)[1]) == [3, 3, 3]
    assert len(np.unique(idx)) == 9  # without replacement


def test_dfr_moves_weight_to_the_core_feature():
    x, y, cue = _spurious_problem()
    groups = label_cue_groups(y, cue, "test")
    z = (x - x.mean(0)) / x.std(0)
    plain = LogisticRegression(C=1.0, l1_ratio=1.0, solver="liblinear").fit(z, y).coef_[0]
    fit = dfr_fit(x, y, groups, c=1.0, n_subsamples=10, seed=0)
    assert plain[1] > 1.2 * plain[0] > 0  # the plain fit leans on the clean spurious feature
    # Balanced groups make the cue independent of the label: its Bayes weight is 0; the core's is
    # 2 * 0.7 / 1**2 = 1.4 per raw unit (1.4 * sd 1.22 = 1.71 standardised), less the L1 shrinkage.
    w, _ = fit.raw()
    assert abs(w[1]) < 0.15 * w[0]
    assert 1.0 < w[0] < 1.8
    assert fit.info["group_sizes"] == {"y0_cue0": 300, "y0_cue1": 30, "y1_cue0": 30, "y1_cue1": 300}
    assert fit.info["subsample_group_size"] == 30
    plain_pred = (z @ plain > 0).astype(int)
    dfr_pred = (fit.decision_function(x) > 0).astype(int)
    assert worst_group_accuracy(dfr_pred, y, groups)[0] > worst_group_accuracy(plain_pred, y, groups)[0] + 0.2


def test_tuned_c_comes_from_the_grid():
    x, y, cue = _spurious_problem(1)
    fit = dfr_fit(x, y, label_cue_groups(y, cue, "t"), patients=np.arange(len(y)) // 4, n_subsamples=3)
    assert fit.info["C"] in (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01) and len(fit.info["C_scores_worst_group_acc"]) == 7


def test_one_subsample_of_balanced_data_equals_sklearn_and_the_written_head():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 8))
    y = (x[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(int)
    groups = np.where(y == 1, "a", "b")
    keep = np.concatenate([np.flatnonzero(groups == g)[:30] for g in ("a", "b")])  # equal groups: the subsample
    x, y, groups = x[keep], y[keep], groups[keep]  # is the whole set
    fit = dfr_fit(x, y, groups, c=0.3, n_subsamples=1)
    ref = LogisticRegression(C=0.3, l1_ratio=1.0, solver="liblinear", random_state=0)
    ref.fit((x - x.mean(0)) / x.std(0), y)
    np.testing.assert_allclose(fit.decision_function(x), ref.decision_function((x - x.mean(0)) / x.std(0)), atol=1e-6)
    swin = create_model("swin", **{**test_overrides("swin"), "embed_dim": 4})  # 8 pooled features
    head = refit_head(swin, fit).head
    with torch.no_grad():
        logits = head(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(logits[:, 1], fit.decision_function(x), atol=1e-4)
    assert np.all(logits[:, 0] == 0)


def _run_folder(tmp_path, tiny, name="swin"):
    torch.manual_seed(0)
    model = create_model(name, **test_overrides(name))
    run = tmp_path / "runs" / "source"
    save_model(model, run / "model.safetensors")
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in test_overrides(name).items()}
    config = config_from_dict({
        "model": {"name": name, **options},
        "data": {"manifest": str(tiny.manifest), "splits": str(tiny.splits), "batch_size": 16, "num_workers": 0},
        "output": {"dir": str(run.parent), "name": run.name},
    })  # fmt: skip
    save_config(config, run / "config.yaml")
    return run


def test_dfr_run_end_to_end(tmp_path, tiny_data):
    run = _run_folder(tmp_path, tiny_data)
    out = tmp_path / "runs" / "source-dfr"
    report = dfr_run(run, out, c=1.0, n_subsamples=3)
    written = json.loads((out / "dfr.json").read_text())
    assert written["C"] == 1.0 and written["worst_group_acc_after"] == report["worst_group_acc_after"]
    assert sum(written["group_sizes"].values()) > 0 and set(written["group_sizes"]) <= {
        "y0_cue0", "y0_cue1", "y1_cue0", "y1_cue1"}  # fmt: skip
    source, new = Run.open(run), Run.open(out)
    assert new.config.output.name == "source-dfr" and new.config.data.manifest == source.config.data.manifest
    feats = extract_features(new, "val")
    np.testing.assert_allclose(feats.features, extract_features(source, "val").features, atol=1e-6)  # body kept
    groups = label_cue_groups(feats.label, feats.cue, "val")
    fit = dfr_fit(feats.features, feats.label, groups, c=1.0, n_subsamples=3)  # the same fit, recomputed
    loaded = load_model(out / "model.safetensors").eval()
    with torch.no_grad():
        logits = loaded.head(torch.as_tensor(feats.features, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(logits[:, 1], fit.decision_function(feats.features), atol=1e-4)
    with pytest.raises(ValueError, match="not empty"):
        dfr_run(run, out)


def test_dfr_refuses_other_models(tmp_path, tiny_data):
    run = _run_folder(tmp_path, tiny_data, name="unet")
    with pytest.raises(ValueError, match=r"swin, swin_tiny, mtl_swin_unet, seg_gated_swin.*'unet'"):
        dfr_run(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()
