"""Evaluation metrics of the paper, as pure functions over numpy arrays (scikit-learn underneath).

Classification (binary, positive class 1): accuracy, precision, recall (= sensitivity), specificity,
F1 of the positive class (``f1_pos``) AND macro F1 over both classes (``f1_macro``, the paper's "F1"),
AUC of the positive-class probability. Segmentation: IoU of the hematoma class (class 1), accumulated
over all slices that have a mask: ``IoU = sum |P & T| / sum |P | T|``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

__all__ = [
    "IoUAccumulator",
    "binary_auc",
    "binary_f1",
    "classification_metrics",
    "group_accuracy",
]


def binary_auc(y_true: np.ndarray, prob: np.ndarray) -> float:
    """ROC AUC of the positive-class probability; NaN when ``y_true`` holds one class only."""
    return float(roc_auc_score(y_true, prob)) if len(np.unique(y_true)) == 2 else float("nan")


def binary_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """``(f1_pos, f1_macro)`` from counts, ``F1 = 2TP / (2TP + FP + FN)`` per class (0 when undefined).

    The same numbers as scikit-learn's ``f1_score`` (zero_division=0), in plain numpy: the bootstrap
    calls it thousands of times.
    """
    y_true, y_pred = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    tp, fp = int((y_true & y_pred).sum()), int((~y_true & y_pred).sum())
    fn, tn = int((y_true & ~y_pred).sum()), int((~y_true & ~y_pred).sum())
    f1_pos = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    f1_neg = 2 * tn / (2 * tn + fn + fp) if tn + fn + fp else 0.0
    return f1_pos, (f1_pos + f1_neg) / 2


def classification_metrics(
    y_true: np.ndarray, prob: np.ndarray | None = None, threshold: float = 0.5, y_pred: np.ndarray | None = None
) -> dict[str, float]:
    """Binary metrics from labels and positive-class probabilities (or hard predictions ``y_pred``).

    ``y_pred = prob >= threshold`` unless given. Returns acc, precision, recall, sensitivity, specificity,
    f1_pos, f1_neg, f1_macro (= (f1_pos + f1_neg) / 2), auc (NaN without probabilities or with one class),
    and the counts tp, fp, fn, tn, n.
    """
    y_true = np.asarray(y_true).astype(np.int64)
    if y_pred is None:
        if prob is None:
            raise ValueError("give prob (positive-class probabilities) or y_pred (hard predictions)")
        y_pred = (np.asarray(prob) >= threshold).astype(np.int64)
    y_pred = np.asarray(y_pred).astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and predictions {y_pred.shape} differ in shape")
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    f1_each = f1_score(y_true, y_pred, labels=[0, 1], average=None, zero_division=0)
    out = {
        "acc": accuracy_score(y_true, y_pred),
        "precision": precision_score(y_true, y_pred, zero_division=0),
        "recall": recall_score(y_true, y_pred, zero_division=0),
        "specificity": tn / (tn + fp) if tn + fp else float("nan"),
        "f1_pos": f1_each[1],
        "f1_neg": f1_each[0],
        "f1_macro": f1_score(y_true, y_pred, labels=[0, 1], average="macro", zero_division=0),
        "auc": binary_auc(y_true, np.asarray(prob)) if prob is not None else float("nan"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n": len(y_true),
    }
    out["sensitivity"] = out["recall"]
    return {k: float(v) for k, v in out.items()}


def group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, cue: np.ndarray) -> dict[str, object]:
    """Accuracy per (label, cue) group (cue -1 = unknown, left out) and the worst group.

    Returns ``{"groups": {"label=1,cue=0": {"acc": .., "n": ..}, ...}, "worst_group": name, "worst_group_acc": ..}``.
    """
    y_true, y_pred, cue = (np.asarray(a).astype(np.int64) for a in (y_true, y_pred, cue))
    groups: dict[str, dict[str, float]] = {}
    for label in (0, 1):
        for c in (0, 1):
            sel = (y_true == label) & (cue == c)
            if sel.any():
                groups[f"label={label},cue={c}"] = {"acc": float((y_pred[sel] == label).mean()), "n": int(sel.sum())}
    if not groups:
        return {"groups": {}, "worst_group": None, "worst_group_acc": float("nan")}
    worst = min(groups, key=lambda g: groups[g]["acc"])
    return {"groups": groups, "worst_group": worst, "worst_group_acc": groups[worst]["acc"]}


class IoUAccumulator:
    """Hematoma-class IoU over many slices: ``sum |P & T| / sum |P | T|`` (class ``cls``, default 1).

    ``update(pred (B,H,W), target (B,H,W))`` with integer class maps; ``compute()`` -> float
    (NaN if neither prediction nor target ever had the class).
    """

    def __init__(self, cls: int = 1) -> None:
        self.cls = cls
        self.intersection = 0
        self.union = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        p, t = np.asarray(pred) == self.cls, np.asarray(target) == self.cls
        self.intersection += int((p & t).sum())
        self.union += int((p | t).sum())

    def compute(self) -> float:
        return self.intersection / self.union if self.union else float("nan")
