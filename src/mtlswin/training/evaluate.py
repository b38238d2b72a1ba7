"""``mtlswin evaluate RUN``: the paper's metrics on any split, with bootstrap confidence intervals.

For each split (default ``test_a`` and ``test_b``, those the splits file has) writes
``RUN/predictions/<split>.csv`` (``index, label, prob, pred`` [+ ``cue``]) and merges
``{split: {metric: value}}`` into ``RUN/metrics.json``. Metrics (:mod:`.metrics`): ``iou`` (hematoma class,
slices with a mask), ``acc``, ``precision``, ``recall``, ``sensitivity``, ``specificity``, ``f1_pos``,
``f1_macro`` (the paper's F1), ``auc``, ``auc_ci95``/``f1_macro_ci95``/``f1_pos_ci95`` (percentile bootstrap,
1,000 resamples, fixed seed) and, when the manifest has ``cue``, ``group_acc`` per (label, cue) with the worst group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtlswin.training.metrics import (
    IoUAccumulator,
    binary_auc,
    binary_f1,
    bootstrap_ci,
    classification_metrics,
    group_accuracy,
)

__all__ = ["DEFAULT_SPLITS", "evaluate_run", "predict_loader", "split_metrics"]

DEFAULT_SPLITS = ("test_a", "test_b")


@torch.inference_mode()
def predict_loader(model: nn.Module, loader: Any, device: str = "cpu") -> tuple[pd.DataFrame, IoUAccumulator]:
    """Run ``model`` over ``loader``: a table (index, label[, prob][, cue]) and the IoU accumulator of its seg head.

    Only the outputs the metrics use are computed (``model(x, tasks=...)`` without ``rec``).
    """
    model = model.to(device).eval()
    tasks = tuple(t for t in getattr(model, "tasks", ("cls",)) if t in ("cls", "seg"))
    iou = IoUAccumulator(cls=1)
    rows: dict[str, list[np.ndarray]] = {"index": [], "label": [], "prob": [], "cue": []}
    for batch in loader:
        outputs = model(batch["image"].to(device), tasks=tasks)
        rows["index"].append(batch["index"].numpy())
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
    table["pred"] = (prob >= threshold).astype(np.int64)
    out.update(classification_metrics(y, prob, threshold=threshold))
    f1_macro = lambda t, p: binary_f1(t, p >= threshold)[1]  # noqa: E731
    f1_pos = lambda t, p: binary_f1(t, p >= threshold)[0]  # noqa: E731
    for name, fn in (("auc", binary_auc), ("f1_macro", f1_macro), ("f1_pos", f1_pos)):
        out[f"{name}_ci95"] = list(bootstrap_ci(y, prob, fn, n_resamples=n_boot, seed=seed))
    if "cue" in table:
        out["group_acc"] = group_accuracy(y, table["pred"].to_numpy(), table["cue"].to_numpy())
    out["threshold"] = threshold
    return out


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
    """Evaluate the run folder ``run`` on ``splits`` (default: test_a and test_b); writes metrics.json + predictions/."""
    from mtlswin.training.run import find_run_dir, load_run
    from mtlswin.training.train import build_datamodule

    config, model = load_run(run)
    run_dir = find_run_dir(run)
    if config is None or run_dir is None:
        raise ValueError(f"{str(run)!r} is not a run folder (no config.yaml): evaluate needs the run's data config")
    dm = build_datamodule(config)
    dm.setup()
    available = _available_splits(config)
    if splits is None:
        splits = [s for s in DEFAULT_SPLITS if s in available]
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
        columns = [c for c in ("index", "label", "prob", "pred", "cue") if c in table]
        table[columns].to_csv(run_dir / "predictions" / f"{split}.csv", index=False)
    path = run_dir / "metrics.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged.update(_json_safe(results))
    path.write_text(json.dumps(merged, indent=2))
    return results


def _available_splits(config: Any) -> set[str]:
    return set(pd.read_csv(config.data.splits)["split"].astype(str).unique())
