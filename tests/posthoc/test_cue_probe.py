"""Cue probe: out-of-fold AUC near 1 when the features carry the cue, near 0.5 when not; folds by patient."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mtlswin.posthoc.cue_probe import cue_probe, probe_auc, probe_out_of_fold


def _patients(n_patients: int = 150, per: int = 4, seed: int = 0):
    """Slices of ``n_patients`` patients; the cue is drawn per slice; features: 4 noise dims."""
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"p{k}" for k in range(n_patients)], per)
    cue = rng.integers(0, 2, len(patients))
    return rng.normal(size=(len(patients), 4)), cue, patients


def test_features_with_the_cue_give_auc_near_one():
    noise, cue, patients = _patients()
    features = noise.copy()
    features[:, 2] += 3.0 * cue  # one dimension carries the cue
    result = probe_auc(features, cue, patients, n_resamples=300)
    assert result["auc"] > 0.95 and result["ci_low"] > 0.5 and result["ci_high"] <= 1.0
    assert result["n_patients"] == 150 and result["n_folds"] == 5 and result["n_slices"] == 600


def test_features_without_the_cue_give_auc_near_half():
    noise, cue, patients = _patients(seed=1)
    result = probe_auc(noise, cue, patients, n_resamples=300)
    assert abs(result["auc"] - 0.5) < 0.1 and result["ci_low"] < 0.5 < result["ci_high"]


def test_patients_are_never_split_across_folds():
    noise, cue, patients = _patients(n_patients=23, per=3, seed=2)
    prob, fold = probe_out_of_fold(noise, cue, patients, n_folds=5)
    assert np.all(np.isfinite(prob)) and set(fold) == {0, 1, 2, 3, 4}
    for p in np.unique(patients):
        assert len(set(fold[patients == p])) == 1


def test_probe_refuses_a_constant_cue():
    noise, cue, patients = _patients()
    with pytest.raises(ValueError, match="cue 0 and cue 1"):
        probe_auc(noise, np.zeros_like(cue), patients)


def test_cue_probe_of_a_run_writes_json(tmp_path, tiny_data):
    from test_dfr import _run_folder

    run = _run_folder(tmp_path, tiny_data)
    report = cue_probe(run, split="train", n_resamples=50)
    written = json.loads((run / "cue_probe.json").read_text())
    assert written["auc"] == pytest.approx(report["auc"]) and written["split"] == "train"
    assert 0.0 <= written["auc"] <= 1.0 and written["n_features"] == 16  # embed 8 x 2 stages
