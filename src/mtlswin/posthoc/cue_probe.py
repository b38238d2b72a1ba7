"""Cue probe: how much of the spurious cue a trained classifier's representation carries.

On one split (default ``test_b``, where the cue is independent of the label, so a probe cannot read the
cue off label information), the frozen pooled features ``f(x)`` (the head's input; shared with DFR:
:func:`mtlswin.posthoc.dfr.extract_features`) are standardised and a logistic regression
(L2, ``C = 1``) predicts the manifest's ``cue`` column:

    p_i = sigmoid(w . z_i + b)  fitted on the other folds   # out-of-fold, folds by patient_id (cue-stratified)
    AUC = AUC(cue, p)  with a 95% CI from the patient bootstrap (mtlswin.stats.bootstrap_ci, fast_auc)

Folds split by PATIENT (every slice of a patient in the same fold), so the probe cannot recognise a
patient's anatomy instead of the cue. The standardisation is fitted on the training folds only. AUC near 1:
the representation encodes the cue (linearly); near 0.5: it does not. Written to ``RUN/cue_probe.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mtlswin.io import atomic_write_text
from mtlswin.methods.registry import register_method
from mtlswin.posthoc.dfr import extract_features
from mtlswin.runs import Run
from mtlswin.stats import bootstrap_ci, fast_auc

__all__ = ["CueProbeSettings", "cue_probe", "probe_auc", "probe_out_of_fold"]


def probe_out_of_fold(
    features: np.ndarray, cue: np.ndarray, patients: np.ndarray, n_folds: int = 5, c: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold cue probabilities ``(N,)`` and the fold of each row ``(N,)``.

    Folds by patient, stratified by cue (``StratifiedGroupKFold``): pooling the out-of-fold scores of folds
    whose training parts differ in cue rate biases the pooled AUC below 0.5 on features without the cue
    (each fold's intercept follows its training rate, the opposite of its test rate); equal rates remove that.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold

    features, cue, patients = np.asarray(features, np.float64), np.asarray(cue).astype(int), np.asarray(patients)
    n_patients = len(np.unique(patients))
    if len(np.unique(cue)) < 2:
        raise ValueError("the cue probe needs slices with cue 0 and cue 1 in the split")
    folds = min(n_folds, n_patients)
    if folds < 2:
        raise ValueError(f"the cue probe needs at least 2 patients for cross-validation, got {n_patients}")
    prob, fold_of = np.full(len(cue), np.nan), np.full(len(cue), -1)
    for k, (train, test) in enumerate(
        StratifiedGroupKFold(folds, shuffle=True, random_state=0).split(features, cue, patients)
    ):
        mean, scale = features[train].mean(axis=0), features[train].std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        if len(np.unique(cue[train])) < 2:  # a fold whose training part holds one cue value: predict its rate
            prob[test] = float(cue[train].mean())
        else:
            lr = LogisticRegression(C=c, max_iter=1000).fit((features[train] - mean) / scale, cue[train])
            prob[test] = lr.predict_proba((features[test] - mean) / scale)[:, 1]
        fold_of[test] = k
    return prob, fold_of


def probe_auc(
    features: np.ndarray,
    cue: np.ndarray,
    patients: np.ndarray,
    n_folds: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Out-of-fold cue AUC and its patient-bootstrap 95% CI: ``{"auc", "ci_low", "ci_high", ...}``."""
    prob, fold_of = probe_out_of_fold(features, cue, patients, n_folds)
    auc, low, high = bootstrap_ci(fast_auc, np.asarray(cue).astype(int), prob, groups=np.asarray(patients),
                                  n_resamples=n_resamples, seed=seed)  # fmt: skip
    return {"auc": auc, "ci_low": low, "ci_high": high, "n_slices": len(prob),
            "n_patients": len(np.unique(patients)), "n_folds": int(fold_of.max() + 1),
            "cue_rate": float(np.mean(cue)), "prob": prob, "fold": fold_of}  # fmt: skip


def cue_probe(
    run: str | Path, split: str = "test_b", n_folds: int = 5, n_resamples: int = 1000, seed: int = 0,
    batch_size: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Probe the frozen features of the trained classifier ``run`` for the cue on ``split``; writes ``RUN/cue_probe.json``."""
    opened = Run.open(run)
    if opened.root is None:
        raise ValueError(f"{str(run)!r} is not inside a run folder: the cue probe needs the run's data config")
    feats = extract_features(opened, split, batch_size)
    if feats.cue is None:
        raise ValueError(f"the manifest of run {opened.name!r} has no `cue` column: nothing to probe")
    known = feats.cue >= 0
    if not known.all():
        feats.features, feats.cue, feats.patient_id = feats.features[known], feats.cue[known], feats.patient_id[known]
    result = probe_auc(feats.features, feats.cue, feats.patient_id, n_folds, n_resamples, seed)
    report = {k: v for k, v in result.items() if k not in ("prob", "fold")}
    report |= {"split": split, "probe": "logistic regression (L2, C=1) on standardised pooled features",
               "cv": "StratifiedGroupKFold: folds by patient_id, stratified by cue (out-of-fold probabilities)",
               "ci": f"patient bootstrap, {n_resamples} resamples, 95%", "n_features": int(feats.features.shape[1]),
               "slices_without_cue": int((~known).sum())}  # fmt: skip
    atomic_write_text(opened.root / "cue_probe.json", json.dumps(report, indent=2) + "\n")
    return report


@dataclass(frozen=True)
class CueProbeSettings:
    """The settings of :func:`cue_probe` (post hoc, on a trained run folder), with its defaults."""

    name: ClassVar[str] = "cue_probe"
    split: str = "test_b"  # where the cue is independent of the label
    n_folds: int = 5  # patient folds of the out-of-fold probe
    n_resamples: int = 1000  # patient bootstrap resamples of the AUC's interval
    seed: int = 0


def _run(settings: CueProbeSettings, run: str | Path, batch_size: int | None = None) -> dict[str, Any]:
    return cue_probe(run, batch_size=batch_size, **dataclasses.asdict(settings))


register_method("cue_probe", CueProbeSettings, "post_hoc", _run)
