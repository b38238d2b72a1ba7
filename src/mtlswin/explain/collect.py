"""Run the audit: each run's attribution maps over a split, audit numbers, sanity check, table and grid figure.

``audit_runs(paths, split, out)`` writes into ``out``:

- ``audit.md`` / ``audit.csv``: per model (and per (label, cue) group) means and bootstrap CIs of
  the numbers of :mod:`mtlswin.explain.audit` (energy in the hematoma mask and in the cue region, each as a
  multiple of chance), with each model's method and its sanity check (:mod:`mtlswin.explain.sanity`: the
  similarity of its maps to those of the model with every weight it uses redrawn);
  ``audit_slices.csv``: the per-slice numbers;
- ``gradcam_grid.png``: the same slices (positives, negatives with another marker, slices with no
  hematoma) as rows; columns = the image with its mask outline, then each model's map, labelled with its
  energy in the mask and in the cue region x chance. A model whose method fails the sanity check gets no map:
  it is not evidence.

Each run's method is its family's default (:mod:`mtlswin.explain.defaults`, chosen by the rule of
docs/explanations.md) unless one is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtlswin.data.twins import twin_loader
from mtlswin.explain.attribution import attribute
from mtlswin.explain.audit import cue_regions, slice_scores, summarise, summary_markdown
from mtlswin.explain.defaults import default_method, default_stage, not_evidence
from mtlswin.explain.figures import GridCell, save_grid
from mtlswin.explain.gradcam import CAM_METHODS, LogitsOnly
from mtlswin.explain.sanity import full_randomisation_similarity
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


SANITY_SLICES = 8  # the audited slices (with a mask) on which each run's method is sanity-checked


@dataclass
class SplitCams:
    """What one run's pass over a split keeps: per-slice audit numbers, the grid's slices, its method and the
    sanity check of that method on that run's model."""

    run: str
    scores: pd.DataFrame  # model, index, label, cue, prob and the columns of mtlswin.explain.audit.METRICS
    grid: dict[int, dict[str, Any]] = field(default_factory=dict)  # manifest index -> panel data
    method: str = "gradcam"
    sanity: dict[str, Any] = field(default_factory=dict)  # spearman, ssim, passes (empty: not checked)


def _twin_images(dm: Any, split: str) -> dict[int, np.ndarray]:
    """Manifest index -> the windowed twin image ``(H, W)`` of every slice of ``split`` that has one."""
    loader = twin_loader(dm, split)
    if loader is None:
        return {}
    return {int(i): image[0].numpy() for batch in loader for i, image in zip(batch["index"], batch["image"])}


def _cue_batch(batch: dict, twins: dict[int, np.ndarray]) -> np.ndarray | None:
    """The cue regions of a batch's slices (empty where a slice has no twin); None when the split has no twins."""
    if not twins:
        return None
    images = batch["image"][:, 0].numpy()
    paired = np.stack([twins.get(int(i), np.full_like(img, np.nan)) for i, img in zip(batch["index"], images)])
    return cue_regions(images, paired)


def _batch_scores(run: str, batch: dict, cams: np.ndarray, probs: np.ndarray, cues: np.ndarray | None) -> pd.DataFrame:
    masks = batch["mask"].numpy() > 0
    keep = batch["has_mask"].numpy().astype(bool) & masks.reshape(len(masks), -1).any(axis=1)
    if not keep.any():
        return pd.DataFrame()
    scores = slice_scores(cams[keep], masks[keep], cues[keep] if cues is not None else None)
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


def _x_chance(cam: np.ndarray, region: np.ndarray | None) -> float:
    """The map's share of energy in ``region`` over the region's share of the image (NaN: no region, no energy)."""
    if region is None or not np.any(region) or not np.any(cam > 0):
        return float("nan")
    return float((cam * region).sum() / cam.sum() / np.mean(region))


def _keep_for_grid(
    grid: dict, taken: dict, batch: dict, cams: np.ndarray, probs: np.ndarray, cues: np.ndarray | None, per_kind: int
) -> None:
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
            "mask_x": _x_chance(cams[i], None if mask is None else mask > 0),
            "cue_x": _x_chance(cams[i], None if cues is None else cues[i]),
        }


def _sanity(run: Run, images: list[torch.Tensor], method: str, stage: int | None) -> dict[str, Any]:
    """The run's method on its model against the fully randomised model, on the first audited slices."""
    if not images:
        return {}
    batch = torch.cat(images)[:SANITY_SLICES]
    result = full_randomisation_similarity(run.model, batch, method, stage=stage, seed=0)
    return {"spearman": float(result["spearman_full"]), "ssim": float(result["ssim_full"]),
            "passes": bool(result["passes"])}  # fmt: skip


def collect_split(
    run: Run,
    split: str,
    method: str | None = None,
    batch_size: int = 16,
    per_kind: int = 2,
    stage: int | None = None,
    sanity: bool = True,
    **data: Any,
) -> SplitCams:
    """Maps of ``run`` over every slice of ``split``; audit numbers of the slices with a mask.

    ``method``: an attribution method of :mod:`mtlswin.explain.attribution` (default: the model family's,
    :func:`mtlswin.explain.defaults.default_method`). ``per_kind``: slices kept for the grid of each kind in
    :data:`GRID_KINDS` (the first ones in manifest order, so every run keeps the same slices). ``stage``: the
    Swin encoder stage CAM methods map (default :func:`mtlswin.explain.defaults.default_stage`; see
    :func:`mtlswin.explain.targets.cam_spec`). ``sanity``: check the method against the randomised model on the
    first :data:`SANITY_SLICES` audited slices. ``data``: ``manifest=`` / ``splits=`` replacing the run's.
    """
    method = method or default_method(run.model)
    stage = default_stage(run.model) if stage is None else stage
    dm = run.datamodule(batch_size=batch_size, num_workers=0, **data)
    loader = dm.dataloader(split, shuffle=False, augment=False)
    twins = _twin_images(dm, split)
    frames, grid, taken, checked = [], {}, {}, []
    logits_only = LogitsOnly(run.model).eval()
    spec = cam_spec(run.model, stage)
    side = _map_side(run.model, stage) if method in CAM_METHODS else None
    for batch in loader:
        cams = attribute(run.model, batch["image"], method=method, spec=spec)
        with torch.no_grad():
            probs = torch.softmax(logits_only(batch["image"]), dim=-1)[:, 1].numpy()
        cues = _cue_batch(batch, twins)
        frame = _batch_scores(run.name, batch, cams, probs, cues)
        frames.append(frame)
        if sanity and sum(len(x) for x in checked) < SANITY_SLICES and len(frame):
            checked.append(batch["image"][np.isin(batch["index"].numpy(), frame["index"].to_numpy())])
        _keep_for_grid(grid, taken, batch, cams, probs, cues, per_kind)
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not scores.empty:
        scores["map"] = f"{side}x{side}" if side else ("input" if method not in CAM_METHODS else "?")
    checks = _sanity(run, checked, method, stage) if sanity else {}
    reason = not_evidence(run.model) if method == default_method(run.model) else None
    if reason:  # the family's rule found no eligible method: whatever this run's check says, not evidence
        checks = {**checks, "passes": False, "reason": reason}
    return SplitCams(run=run.name, scores=scores, grid=grid, method=method, sanity=checks)


def _map_side(model: torch.nn.Module, stage: int | None) -> int | None:
    """Side of the CAM map in cells (Swin encoders know it; None for other families)."""
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
            shown = panel["cam"] if res.sanity.get("passes", True) else None  # a failing method is not evidence
            cells.append(GridCell(panel["image"], shown, panel["mask"], _caption(res, panel)))
        rows.append(cells)
    return rows, titles


def _caption(res: SplitCams, panel: dict) -> str:
    text = f"p(pos)={panel['prob']:.2f}"
    if not res.sanity.get("passes", True):
        return text + ("\nno map: not evidence" if res.sanity.get("reason") else "\nno map: fails sanity check")
    parts = [
        f"{name} {panel[key]:.1f}x" for key, name in (("mask_x", "mask"), ("cue_x", "cue")) if np.isfinite(panel[key])
    ]
    return text + ("\n" + ", ".join(parts) if parts else "")


def _unique_names(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name}_{seen[run.name]}"


def _with_sanity(summary: pd.DataFrame, results: list[SplitCams]) -> pd.DataFrame:
    """The summary with each run's method and sanity check beside its rows."""
    by_run = {r.run: r for r in results}
    summary.insert(1, "method", [by_run[m].method for m in summary["model"]])
    for key in ("spearman", "ssim", "passes", "reason"):
        column = {"passes": "sanity_pass", "reason": "not_evidence"}.get(key, f"sanity_{key}")
        summary[column] = [by_run[m].sanity.get(key) for m in summary["model"]]
    return summary


def audit_runs(
    paths: list[str | Path],
    split: str,
    out: str | Path,
    method: str | None = None,
    batch_size: int = 16,
    per_kind: int = 2,
    n_resamples: int = 2000,
    seed: int = 0,
    stage: int | None = None,
    grid_runs: int | None = None,
    **data: Any,
) -> pd.DataFrame:
    """Audit every run of ``paths`` on ``split``; write the table, per-slice CSV and grid to ``out``.

    ``method``/``stage``: see :func:`collect_split` (default: each run's family's); ``grid_runs``: only the first N
    runs get a column in the grid (default all). Returns the summary table (see
    :func:`mtlswin.explain.audit.summarise`) with each run's ``method`` and its sanity check (``sanity_spearman``,
    ``sanity_ssim``, ``sanity_pass``).
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
    summary = _with_sanity(summarise(scores, n_resamples=n_resamples, seed=seed), results)
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
