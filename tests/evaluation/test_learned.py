"""The "did not learn" flag: validation AUC at most 0.6, or one class for >= 99% of a test set."""

from __future__ import annotations

import pandas as pd

from mtlswin.evaluation.learned import best_val_auc, learning_failure, run_learning_failure


def _preds(n_pos: int, n: int = 200) -> pd.DataFrame:
    return pd.DataFrame({"prob": [0.5] * n, "pred": [1] * n_pos + [0] * (n - n_pos)})


def test_thresholds_of_the_flag():
    assert learning_failure(0.61, {"test_a": _preds(30)}) == ""
    assert learning_failure(0.60, {"test_a": _preds(30)}) == "val AUC 0.600"
    assert learning_failure(0.9, {"test_b": _preds(2)}) == "test_b: 99.0% predicted negative"
    assert learning_failure(0.9, {"test_b": _preds(3)}) == ""
    assert learning_failure(0.9, {"test_a": _preds(199)}) == "test_a: 99.5% predicted positive"
    assert learning_failure(None, {"test_a": _preds(0)}).startswith("test_a: 100.0%")


def test_best_val_auc_is_the_exported_models(tmp_path):
    log = pd.DataFrame({"epoch": [0, 0, 1, 1], "val/auc": [None, 0.55, None, 0.71], "train/loss": [1, None, 0.5, None]})
    assert best_val_auc(log) == 0.71 and best_val_auc(pd.DataFrame({"x": [1]})) is None
    run = tmp_path / "swin-seed0"
    (run / "logs").mkdir(parents=True)
    (run / "predictions").mkdir()
    log.assign(**{"val/auc": [None, 0.5, None, 0.58]}).to_csv(run / "logs" / "metrics.csv", index=False)
    _preds(30).to_csv(run / "predictions" / "test_a.csv", index=False)
    assert run_learning_failure(run) == "val AUC 0.580"
    seg = tmp_path / "swin_unet-seed0"
    (seg / "predictions").mkdir(parents=True)
    pd.DataFrame({"index": [0], "iou": [0.5]}).to_csv(seg / "predictions" / "test_a.csv", index=False)
    assert run_learning_failure(seg) == ""  # segmentation only: never flagged
