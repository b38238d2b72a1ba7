"""Run the audit: Grad-CAM over a split for each run, audit numbers, table and grid figure.

``audit_runs(paths, split, out)`` writes into ``out``:

- ``audit.md`` / ``audit.csv``: per model (and per (label, cue) group) means and bootstrap CIs of
  the numbers of :mod:`mtlswin.explain.audit`; ``audit_slices.csv``: the per-slice numbers;
- ``gradcam_grid.png``: the same slices (positives, negatives with another marker, slices with no
  hematoma) as rows; columns = the image with its mask outline, then each model's Grad-CAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtlswin.explain.audit import slice_scores, summarise, summary_markdown
from mtlswin.explain.figures import GridCell, save_grid
from mtlswin.explain.gradcam import LogitsOnly, compute_cam
from mtlswin.explain.targets import cam_spec
from mtlswin.io import atomic_path, atomic_write_text, created_dir
from mtlswin.runs import Run

__all__ = ["GRID_KINDS", "SplitCams", "audit_runs", "collect_split", "slice_kind"]

GRID_KINDS = ("positive", "other marker", "no hematoma")


def slice_kind(label: int, n_markers: int) -> str:
    """Row kind of the grid: target positive / negative with another marker / no hematoma at all."""
    if label == 1:
        return "positive"
    return "other marker" if n_markers > 0 else "no hematoma"


@dataclass
class SplitCams:
    """What one run's pass over a split keeps: per-slice audit numbers and the grid's slices."""

    run: str
    scores: pd.DataFrame  # model, index, label, cue, prob, energy_in_mask, pointing_hit, mask_area
    grid: dict[int, dict[str, Any]] = field(default_factory=dict)  # manifest index -> panel data


def _batch_scores(run: str, batch: dict, cams: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    masks = batch["mask"].numpy() > 0
    keep = batch["has_mask"].numpy().astype(bool) & masks.reshape(len(masks), -1).any(axis=1)
    if not keep.any():
        return pd.DataFrame()
    scores = slice_scores(cams[keep], masks[keep])
    cue = batch["cue"].numpy()[keep] if "cue" in batch else np.full(int(keep.sum()), -1)
    return pd.DataFrame(
        {
            "model": run,
            "index": batch["index"].numpy()[keep],
            "patient_id": np.asarray(batch["patient_id"], dtype=object)[keep],
            "label": batch["label"].numpy()[keep],
            "cue": cue,
            "prob": probs[keep],
            **scores,
        }
    )


def _keep_for_grid(grid: dict, taken: dict, batch: dict, cams: np.ndarray, probs: np.ndarray, per_kind: int) -> None:
    n_markers = (batch["labels"].numpy() > 0).sum(axis=1)
    for i in range(len(cams)):
        kind = slice_kind(int(batch["label"][i]), int(n_markers[i]))
        if taken.get(kind, 0) >= per_kind:
            continue
        taken[kind] = taken.get(kind, 0) + 1
        mask = batch["mask"][i].numpy() if bool(batch["has_mask"][i]) else None
        grid[int(batch["index"][i])] = {
            "image": batch["image"][i, 0].numpy(),
            "cam": cams[i],
            "mask": mask,
            "kind": kind,
            "cue": int(batch["cue"][i]) if "cue" in batch else -1,
            "prob": float(probs[i]),
        }


def collect_split(
    run: Run,
    split: str,
    method: str = "gradcam",
    batch_size: int = 16,
    per_kind: int = 2,
    stage: int | None = None,
    **data: Any,
) -> SplitCams:
    """Grad-CAM of ``run`` over every slice of ``split``; audit numbers of the slices with a mask.

    ``per_kind``: slices kept for the grid of each kind in :data:`GRID_KINDS` (the first ones in
    manifest order, so every run keeps the same slices). ``stage``: the Swin encoder stage mapped instead of
    the bottleneck (:func:`mtlswin.explain.targets.cam_spec`). ``data``: ``manifest=`` / ``splits=`` replacing
    the run's.
    """
    dm = run.datamodule(batch_size=batch_size, num_workers=0, **data)
    loader = dm.dataloader(split, shuffle=False, augment=False)
    frames, grid, taken = [], {}, {}
    logits_only = LogitsOnly(run.model).eval()
    spec = cam_spec(run.model, stage)
    side = _map_side(run.model, stage)
    for batch in loader:
        cams = compute_cam(run.model, batch["image"], method=method, spec=spec)
        with torch.no_grad():
            probs = torch.softmax(logits_only(batch["image"]), dim=-1)[:, 1].numpy()
        frames.append(_batch_scores(run.name, batch, cams, probs))
        _keep_for_grid(grid, taken, batch, cams, probs, per_kind)
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not scores.empty:
        scores["map"] = f"{side}x{side}" if side else "?"
    return SplitCams(run=run.name, scores=scores, grid=grid)


def _map_side(model: torch.nn.Module, stage: int | None) -> int | None:
    """Side of the Grad-CAM map in cells (Swin encoders know it; None for other families)."""
    encoder = getattr(model, "encoder", None)
    return encoder.cam_resolution(stage) if hasattr(encoder, "cam_resolution") else None


def _grid_rows(results: list[SplitCams]) -> tuple[list[list[GridCell]], list[str]]:
    first = results[0].grid
    order = sorted(first, key=lambda idx: (GRID_KINDS.index(first[idx]["kind"]), idx))
    order = [idx for idx in order if all(idx in r.grid for r in results)]
    rows, titles = [], []
    for idx in order:
        ref = first[idx]
        cue = f", cue={ref['cue']}" if ref["cue"] >= 0 else ""
        titles.append(f"{ref['kind']}\nrow {idx + 1}{cue}")
        cells = [GridCell(ref["image"], None, ref["mask"], "mask" if ref["mask"] is not None else "no mask")]
        for res in results:
            panel = res.grid[idx]
            cells.append(GridCell(panel["image"], panel["cam"], panel["mask"], _caption(res, idx, panel)))
        rows.append(cells)
    return rows, titles


def _caption(res: SplitCams, idx: int, panel: dict) -> str:
    text = f"p(pos)={panel['prob']:.2f}"
    if not res.scores.empty:
        match = res.scores[res.scores["index"] == idx]
        if len(match):
            text += f"  E_in={match['energy_in_mask'].iloc[0]:.2f}"
    return text


def _unique_names(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name}_{seen[run.name]}"


def audit_runs(
    paths: list[str | Path],
    split: str,
    out: str | Path,
    method: str = "gradcam",
    batch_size: int = 16,
    per_kind: int = 2,
    n_resamples: int = 2000,
    seed: int = 0,
    stage: int | None = None,
    grid_runs: int | None = None,
    **data: Any,
) -> pd.DataFrame:
    """Audit every run of ``paths`` on ``split``; write the table, per-slice CSV and grid to ``out``.

    ``stage``: see :func:`collect_split`; ``grid_runs``: only the first N runs get a column in the grid
    (default all). Returns the summary table (see :func:`mtlswin.explain.audit.summarise`).
    """
    if not paths:
        raise ValueError("audit needs at least one run folder or checkpoint")
    runs = [Run.open(p) for p in paths]
    _unique_names(runs)
    data = {k: v for k, v in data.items() if v is not None}
    results = [collect_split(run, split, method, batch_size, per_kind, stage, **data) for run in runs]
    scores = pd.concat([r.scores for r in results], ignore_index=True)
    if scores.empty:
        raise ValueError(f"split {split!r} has no slice with a hematoma mask; audit a split with masks (e.g. test_a)")
    summary = summarise(scores, n_resamples=n_resamples, seed=seed)
    shown = results[:grid_runs] if grid_runs else results
    rows, titles = _grid_rows(shown)
    with created_dir(Path(out)) as out:
        with atomic_path(out / "audit_slices.csv") as tmp:
            scores.to_csv(tmp, index=False)
        with atomic_path(out / "audit.csv") as tmp:
            summary.to_csv(tmp, index=False)
        atomic_write_text(out / "audit.md", summary_markdown(summary, split))
        if rows:
            with atomic_path(out / "gradcam_grid.png") as tmp:
                save_grid(tmp, rows, ["image + mask", *[r.run for r in shown]], titles)
    return summary
