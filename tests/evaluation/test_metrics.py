"""Known-answer tests of the evaluation metrics."""

from __future__ import annotations

import numpy as np
import pytest

from mtlswin.evaluation.metrics import (
    IoUAccumulator,
    binary_f1,
    classification_metrics,
    group_accuracy,
)


def labels_from_confusion(tp: int, fp: int, fn: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` arrays that have exactly this confusion matrix."""
    y_true = np.array([1] * tp + [0] * fp + [1] * fn + [0] * tn, dtype=np.int64)
    y_pred = np.array([1] * tp + [1] * fp + [0] * fn + [0] * tn, dtype=np.int64)
    return y_true, y_pred


def test_macro_vs_positive_f1_reproduces_the_paper_swin_row():
    """TP 230, FP 53, FN 51, TN 2004: the paper's Swin row (acc .956, prec .813, rec .819, F1 .895 = macro)."""
    y, pred = labels_from_confusion(230, 53, 51, 2004)
    m = classification_metrics(y, y_pred=pred)
    assert round(m["acc"], 3) == 0.956
    assert round(m["precision"], 3) == 0.813
    assert round(m["recall"], 3) == 0.819
    assert round(m["f1_pos"], 3) == 0.816
    assert round(m["f1_neg"], 3) == 0.975
    assert round(m["f1_macro"], 3) == 0.895
    assert m["f1_macro"] == pytest.approx((m["f1_pos"] + m["f1_neg"]) / 2)
    assert m["sensitivity"] == m["recall"]
    assert binary_f1(y, pred) == pytest.approx((m["f1_pos"], m["f1_macro"]), abs=1e-12)
    assert m["specificity"] == pytest.approx(2004 / 2057)
    # The test-A class balance this matrix implies: 281 positives in 2338 slices = 12.0 %.
    assert (m["tp"] + m["fn"]) / m["n"] == pytest.approx(0.1202, abs=1e-4)


def test_auc_and_threshold():
    y = np.array([0, 0, 1, 1])
    prob = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, prob, threshold=0.5)
    assert m["auc"] == pytest.approx(0.75)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 1)


def test_group_accuracy_and_worst_group():
    y = np.array([1, 1, 1, 0, 0, 0])
    pred = np.array([1, 1, 0, 0, 1, 1])
    cue = np.array([1, 1, 0, 0, 1, -1])
    g = group_accuracy(y, pred, cue)
    assert g["groups"]["label=1,cue=1"] == {"acc": 1.0, "n": 2}
    assert g["groups"]["label=1,cue=0"] == {"acc": 0.0, "n": 1}
    assert g["groups"]["label=0,cue=1"] == {"acc": 0.0, "n": 1}
    assert g["worst_group_acc"] == 0.0 and g["worst_group"] in ("label=1,cue=0", "label=0,cue=1")


def test_iou_accumulates_over_slices():
    acc = IoUAccumulator()
    acc.update(np.array([[[1, 1], [0, 0]]]), np.array([[[1, 0], [0, 0]]]))  # inter 1, union 2
    acc.update(np.array([[[0, 0], [1, 1]]]), np.array([[[0, 0], [1, 1]]]))  # inter 2, union 2
    assert acc.compute() == pytest.approx(3 / 4)


def test_numpy_f1_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y, pred = rng.integers(0, 2, 30), rng.integers(0, 2, 30)
        m = classification_metrics(y, y_pred=pred)
        assert binary_f1(y, pred) == pytest.approx((m["f1_pos"], m["f1_macro"]), abs=1e-12)
