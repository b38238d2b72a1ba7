"""``mtlswin evaluate RUN``: the paper's metrics on any split, with bootstrap confidence intervals.

For each split (default ``test_a`` and ``test_b``, plus ``test_trap`` -- the phantom's trap hospitals, cue
anti-correlated with the label -- those the splits file has) writes
``RUN/predictions/<split>.csv`` (``index, patient_id, label, prob, pred`` [+ ``cue``]) and merges
``{split: {metric: value}}`` into ``RUN/metrics.json``. Metrics (:mod:`.metrics`): ``iou`` (hematoma class,
slices with a mask), ``acc``, ``precision``, ``recall``, ``sensitivity``, ``specificity``, ``f1_pos``,
``f1_macro`` (the paper's F1), ``auc``, ``auc_ci95``/``f1_macro_ci95``/``f1_pos_ci95`` (percentile bootstrap
over PATIENTS, 1,000 resamples, fixed seed; :mod:`mtlswin.stats`), when the manifest has ``cue``, ``group_acc`` per (label, cue)
with the worst group, and when it names counterfactual twins, ``cue_sensitivity`` / ``cue_flip_rate``
(:mod:`.counterfactual`; predictions gain ``prob_twin``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtlswin.data.twins import twin_loader
from mtlswin.evaluation.counterfactual import cue_metrics
from mtlswin.evaluation.metrics import (
    IoUAccumulator,
    binary_f1,
    classification_metrics,
    group_accuracy,
)
from mtlswin.io import atomic_path, atomic_write_text
from mtlswin.runs import Run
from mtlswin.stats import bootstrap_ci, fast_auc

__all__ = [
    "DEFAULT_SPLITS",
    "OPTIONAL_SPLITS",
    "auc_undefined_reason",
    "default_splits",
    "evaluate_run",
    "predict_loader",
    "split_metrics",
]

DEFAULT_SPLITS = ("test_a", "test_b")
OPTIONAL_SPLITS = ("test_trap",)  # scored by default only when the run's splits have them


def default_splits(available: set[str] | list[str] | tuple[str, ...]) -> list[str]:
    """The splits ``evaluate`` scores when none are named: those of ``DEFAULT_SPLITS`` + ``OPTIONAL_SPLITS``
    that ``available`` holds, in that order."""
    return [s for s in (*DEFAULT_SPLITS, *OPTIONAL_SPLITS) if s in available]


@torch.inference_mode()
def predict_loader(model: nn.Module, loader: Any, device: str = "cpu") -> tuple[pd.DataFrame, IoUAccumulator]:
    """Run ``model`` over ``loader``: a table (index, label[, prob][, cue]) and the IoU accumulator of its seg head.

    Only the outputs the metrics use are computed (``model(x, tasks=...)`` without ``rec``).
    """
    model = model.to(device).eval()
    tasks = tuple(t for t in getattr(model, "tasks", ("cls",)) if t in ("cls", "seg"))
    iou = IoUAccumulator(cls=1)
    rows: dict[str, list[np.ndarray]] = {"index": [], "patient_id": [], "label": [], "prob": [], "cue": []}
    for batch in loader:
        outputs = model(batch["image"].to(device), tasks=tasks)
        rows["index"].append(batch["index"].numpy())
        rows["patient_id"].append(np.asarray(batch["patient_id"], dtype=object))
        rows["label"].append(batch["label"].numpy())
        if "logits" in outputs:
            rows["prob"].append(outputs["logits"].float().softmax(dim=1)[:, 1].cpu().numpy())
        if "cue" in batch:
            rows["cue"].append(batch["cue"].numpy())
        if "seg" in outputs:
            sel = batch["has_mask"].bool()
            iou.update(outputs["seg"][sel.to(device)].argmax(dim=1).cpu().numpy(), batch["mask"][sel].numpy())
    table = pd.DataFrame({k: np.concatenate(v) for k, v in rows.items() if v})
    return table, iou


def split_metrics(
    table: pd.DataFrame, iou: float | None, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Metrics of one split from its prediction table (adds the ``pred`` column in place)."""
    out: dict[str, Any] = {"n": len(table), "n_pos": int(table["label"].sum()) if len(table) else 0}
    if iou is not None:
        out["iou"] = iou
    if "prob" not in table:
        return out
    y, prob = table["label"].to_numpy(), table["prob"].to_numpy()
    reason = auc_undefined_reason(y)
    if reason:
        out["auc_undefined"] = reason
    table["pred"] = (prob >= threshold).astype(np.int64)
    out.update(classification_metrics(y, prob, threshold=threshold))
    f1_macro = lambda t, p: binary_f1(t, p >= threshold)[1]  # noqa: E731
    f1_pos = lambda t, p: binary_f1(t, p >= threshold)[0]  # noqa: E731
    groups = table["patient_id"].to_numpy() if "patient_id" in table else None  # patients, not slices
    for name, fn in (("auc", fast_auc), ("f1_macro", f1_macro), ("f1_pos", f1_pos)):
        out[f"{name}_ci95"] = list(bootstrap_ci(fn, y, prob, groups=groups, n_resamples=n_boot, seed=seed)[1:])
    if "cue" in table:
        out["group_acc"] = group_accuracy(y, table["pred"].to_numpy(), table["cue"].to_numpy())
    out["threshold"] = threshold
    return out


def auc_undefined_reason(labels: np.ndarray) -> str | None:
    """Why the AUC of ``labels`` is undefined (a split with one class only, or no slice), else ``None``."""
    n, n_pos = len(labels), int(np.sum(labels))
    if n == 0:
        return "AUC undefined: the split has no slice"
    if n_pos == 0:
        return f"AUC undefined: the split has no positive slice (0 of {n}); make larger splits"
    if n_pos == n:
        return f"AUC undefined: the split has no negative slice ({n} of {n} positive); make larger splits"
    return None


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def evaluate_run(
    run: str | Path, splits: list[str] | tuple[str, ...] | None = None, n_boot: int = 1000, seed: int = 0,
    device: str | None = None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Evaluate the run folder ``run`` on ``splits`` (default: test_a, test_b and, when the splits have it,
    test_trap); writes metrics.json + predictions/."""
    opened = Run.open(run)
    config, model, run_dir = opened.config, opened.model, opened.root
    if config is None or run_dir is None:
        raise ValueError(f"{str(run)!r} is not a run folder (no config.yaml): evaluate needs the run's data config")
    dm = opened.datamodule()
    available = _available_splits(dm)
    if splits is None:
        splits = default_splits(available)
    for split in splits:
        if split not in available:
            raise ValueError(
                f"split {split!r} is not in {config.data.splits}; available: {', '.join(sorted(available))}"
            )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    results = {}
    (run_dir / "predictions").mkdir(exist_ok=True)
    for split in splits:
        table, iou = predict_loader(model, dm.dataloader(split, shuffle=False, augment=False), device)
        has_seg = "seg" in getattr(model, "tasks", ())
        results[split] = split_metrics(table, iou.compute() if has_seg else None, config.train.threshold, n_boot, seed)
        twins = twin_loader(dm, split) if "prob" in table else None
        if twins is not None:  # the counterfactual cue test
            twin_table, _ = predict_loader(model, twins, device)
            table["prob_twin"] = table["index"].map(dict(zip(twin_table["index"], twin_table["prob"])))
            results[split].update(cue_metrics(table, config.train.threshold, n_boot, seed))
        columns = [c for c in ("index", "patient_id", "label", "prob", "pred", "cue", "prob_twin") if c in table]
        with atomic_path(run_dir / "predictions" / f"{split}.csv") as tmp:
            table[columns].to_csv(tmp, index=False)
    path = run_dir / "metrics.json"
    merged = _read_metrics(path)
    merged.update(_json_safe(results))
    atomic_write_text(path, json.dumps(merged, indent=2))
    return results


def _read_metrics(path: Path) -> dict[str, Any]:
    """The metrics.json of earlier evaluations ({} if none, or if it does not parse: it is rewritten whole)."""
    try:
        merged = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return merged if isinstance(merged, dict) else {}


def _available_splits(dm: Any) -> set[str]:
    return set(dm.splits["split"].astype(str).unique())
