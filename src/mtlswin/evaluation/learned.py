"""Did a classifier run learn at all? The flag the results table and the claims show for each run.

A run *did not learn* when either holds:

- its validation AUC is at most ``VAL_AUC_MIN`` (0.6): the best ``val/auc`` of ``logs/metrics.csv``, which
  is the exported model's (``model.safetensors`` comes from ``best.ckpt``, chosen by ``val/auc``);
- it predicts one class for at least ``ONE_CLASS_SHARE`` (99%) of the slices of a test set, at its own
  decision threshold (the ``pred`` column of ``predictions/<split>.csv``): a collapsed run.

Such a run stays in every statistic (a method that sometimes fails to train has that in its record); the
flag only makes it visible. A segmentation-only run (no ``prob`` column, no ``val/auc``) is never flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ONE_CLASS_SHARE",
    "VAL_AUC_MIN",
    "best_val_auc",
    "is_classifier",
    "learning_failure",
    "run_learning_failure",
]

VAL_AUC_MIN = 0.6
ONE_CLASS_SHARE = 0.99


def best_val_auc(log: pd.DataFrame | None) -> float | None:
    """The highest ``val/auc`` logged, or None when the log has none."""
    if log is None or "val/auc" not in log:
        return None
    values = pd.to_numeric(log["val/auc"], errors="coerce").dropna()
    return float(values.max()) if len(values) else None


def is_classifier(log: pd.DataFrame | None, predictions: Mapping[str, pd.DataFrame]) -> bool:
    """Whether the run has a classification output: a logged ``val/auc`` or a ``prob`` column."""
    return best_val_auc(log) is not None or any("prob" in t for t in predictions.values())


def learning_failure(val_auc: float | None, predictions: Mapping[str, pd.DataFrame]) -> str:
    """Why the run did not learn (e.g. ``"val AUC .55"``, ``"test_b: 99.8% predicted negative"``), or ``""``."""
    reasons = []
    if val_auc is not None and np.isfinite(val_auc) and val_auc <= VAL_AUC_MIN:
        reasons.append(f"val AUC {val_auc:.3f}")
    for split, table in predictions.items():
        if "pred" not in table or not len(table):
            continue
        share_pos = float((table["pred"] == 1).mean())
        share, side = (share_pos, "positive") if share_pos >= 0.5 else (1.0 - share_pos, "negative")
        if share >= ONE_CLASS_SHARE:
            reasons.append(f"{split}: {share:.1%} predicted {side}")
    return "; ".join(reasons)


def run_learning_failure(
    run: str | Path, splits: tuple[str, ...] = ("test_a", "test_b"), predictions: Mapping[str, pd.DataFrame] = ()
) -> str:
    """:func:`learning_failure` of a run folder, from ``logs/metrics.csv`` and ``predictions/<split>.csv`` (or
    the tables of ``predictions`` the caller has already read). A segmentation-only run has neither a
    ``val/auc`` nor a ``pred`` column, so it is never flagged."""
    run = Path(run)
    log_path = run / "logs" / "metrics.csv"
    log = pd.read_csv(log_path) if log_path.is_file() else None
    given = dict(predictions)
    tables = {s: given[s] if s in given else pd.read_csv(p) for s in splits
              if s in given or (p := run / "predictions" / f"{s}.csv").is_file()}  # fmt: skip
    return learning_failure(best_val_auc(log), tables)
