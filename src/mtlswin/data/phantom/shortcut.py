"""Is the cue a shortcut? Logistic regression on a few global image statistics.

The features see only the written HU image (no labels, no tissue map): the intracranial cavity is
found as the holes of the skull (> 300 HU), and the statistics are CSF-like proportions (ventricle
and sulcal size proxies). If the spurious cue works, a classifier on them predicts hypodensity in
the cue hospitals and is at chance elsewhere. Uses scikit-learn for the model and the AUC.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ("csf_fraction", "central_csf_fraction", "log_intracranial_area")


def global_features(hu: np.ndarray) -> np.ndarray:
    """``(3,)`` features of one ``(H, W)`` HU slice: fraction of intracranial pixels in 0-15 HU
    (after a 1-pixel Gaussian smoothing against noise), the same fraction in the central half of
    the cavity's bounding box, and log of the cavity's area in pixels."""
    skull = hu > 300
    cavity = ndimage.binary_fill_holes(skull) & ~ndimage.binary_dilation(skull, iterations=2)
    if cavity.sum() < 10:
        return np.array([0.0, 0.0, 0.0])
    smooth = ndimage.gaussian_filter(hu.astype(np.float32), 1.0)
    csf = cavity & (smooth >= 0) & (smooth <= 15)
    rows, cols = np.nonzero(cavity)
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    dr, dc = (r1 - r0) // 4, (c1 - c0) // 4
    centre = np.zeros_like(cavity)
    centre[r0 + dr : r1 - dr, c0 + dc : c1 - dc] = True
    return np.array([csf.sum() / cavity.sum(), (csf & centre).sum() / max(1, (cavity & centre).sum()),
                     np.log(cavity.sum())])  # fmt: skip


def shortcut_aucs(features: np.ndarray, labels: np.ndarray, in_cue_hospitals: np.ndarray, seed: int = 0
                  ) -> tuple[float, float]:  # fmt: skip
    """AUCs of a logistic regression trained on the cue hospitals.

    Returns ``(auc_cue_hospitals, auc_other_hospitals)``: the first is 5-fold cross-validated on
    the cue hospitals' slices, the second comes from the model fitted on all of them and applied to
    the other hospitals.
    """
    x, y, m = np.asarray(features, float), np.asarray(labels, int), np.asarray(in_cue_hospitals, bool)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    inside = cross_val_predict(model, x[m], y[m], cv=folds, method="predict_proba")[:, 1]
    model.fit(x[m], y[m])
    outside = model.predict_proba(x[~m])[:, 1]
    return float(roc_auc_score(y[m], inside)), float(roc_auc_score(y[~m], outside))
