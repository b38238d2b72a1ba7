"""Spurious-correlation audit: does a classifier's Grad-CAM sit on the hematoma?

For one slice with a hematoma mask ``M (H, W)`` (bool) and a map ``S (H, W) >= 0``:

- ``energy_in_mask = sum(S * M) / sum(S)``: the energy-based pointing game (Wang et al., Score-CAM
  2020); NaN for an all-zero map (no energy to place). 1 = all energy on the hematoma.
- ``pointing_hit = M[argmax S]``: the pointing game (Zhang et al. 2016); the argmax is numpy's
  first maximum in row-major order, so ties are broken the same way for every model; NaN for an
  all-zero map (it has no maximum).
- ``mask_area = mean(M)``: the chance baseline; a map spread uniformly scores ``energy_in_mask =
  mask_area``, and a random maximum hits with probability ``mask_area``.

Aggregates are means with percentile-bootstrap 95% intervals (:func:`mtlswin.stats.bootstrap_ci`, fixed
seed; whole patients are resampled when the scores carry ``patient_id``), per model and per (label, cue) group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtlswin.stats import bootstrap_ci

__all__ = ["METRICS", "finite_mean", "group_name", "mean_ci", "slice_scores", "summarise", "summary_markdown"]

METRICS = ("energy_in_mask", "pointing_hit", "mask_area")


def _check_pair(cams: np.ndarray, masks: np.ndarray) -> None:
    if cams.ndim != 3 or cams.shape != masks.shape:
        raise ValueError(f"cams and masks must both be (N, H, W), got {cams.shape} and {masks.shape}")
    if (cams < 0).any():
        raise ValueError("cams must be >= 0 (Grad-CAM maps after ReLU); got a negative value")
    empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
    if empty.size:
        raise ValueError(f"masks of slices {empty.tolist()} are empty; audit only slices that have a hematoma mask")


def slice_scores(cams: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-slice audit numbers for ``cams (N, H, W) >= 0`` and non-empty ``masks (N, H, W)``.

    Returns arrays of length N: ``energy_in_mask`` (float), ``pointing_hit`` (0/1 float), both NaN
    for an all-zero map, and ``mask_area`` (float); formulas in the module docstring.
    """
    cams = np.asarray(cams, dtype=np.float64)
    masks = np.asarray(masks) > 0
    _check_pair(cams, masks)
    flat_cam = cams.reshape(len(cams), -1)
    flat_mask = masks.reshape(len(masks), -1)
    total = flat_cam.sum(axis=1)
    inside = (flat_cam * flat_mask).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        energy = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    hit = flat_mask[np.arange(len(flat_cam)), flat_cam.argmax(axis=1)].astype(np.float64)
    hit[total <= 0] = np.nan
    return {"energy_in_mask": energy, "pointing_hit": hit, "mask_area": flat_mask.mean(axis=1)}


def finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values (NaN when there is none): all-zero maps are counted apart, not averaged."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def mean_ci(
    values: np.ndarray, groups: np.ndarray | None = None, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the finite ``values``: percentile bootstrap over rows, or over ``groups``
    (patients). Fewer than two finite values give NaN bounds (one number has no interval)."""
    values = np.asarray(values, dtype=np.float64)
    if np.isfinite(values).sum() < 2:
        return finite_mean(values), float("nan"), float("nan")
    return bootstrap_ci(finite_mean, values, groups=groups, n_resamples=n_resamples, seed=seed)


def group_name(label: int, cue: int | None) -> str:
    """``"label=1"`` or ``"label=1, cue=0"`` (cue -1 or None: the manifest has no cue there)."""
    return f"label={int(label)}" if cue is None or int(cue) < 0 else f"label={int(label)}, cue={int(cue)}"


def _summary_row(model: str, group: str, frame: pd.DataFrame, n_resamples: int, seed: int) -> dict:
    row: dict[str, object] = {"model": model, "group": group, "n": len(frame)}
    row["map"] = str(frame["map"].iloc[0]) if "map" in frame and len(frame) else ""  # Grad-CAM map size, cells
    side = int(row["map"].split("x")[0]) if row["map"][:1].isdigit() else None
    # how many map cells the median hematoma covers: below ~4 the map cannot outline it
    row["median_mask_cells"] = float(np.median(frame["mask_area"]) * side * side) if side and len(frame) else np.nan
    row["n_empty_maps"] = int(frame["energy_in_mask"].isna().sum())  # all-zero maps, left out of the means
    groups = frame["patient_id"].to_numpy() if "patient_id" in frame else None  # resample patients when known
    for metric in METRICS:
        mean, low, high = mean_ci(frame[metric].to_numpy(), groups, n_resamples=n_resamples, seed=seed)
        row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = mean, low, high
    return row


def summarise(scores: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per model ("all" slices) and per model x (label, cue) group, with bootstrap CIs.

    ``scores`` has columns ``model``, ``label``, ``cue`` (-1 = none) and :data:`METRICS`.
    Output columns: ``model, group, n, n_empty_maps`` (all-zero maps, left out of the means) then
    each metric with ``_lo``/``_hi`` bounds.
    """
    missing = {"model", "label", "cue", *METRICS} - set(scores.columns)
    if missing:
        raise ValueError(f"scores lack columns {sorted(missing)}; build them with slice_scores()")
    rows = []
    for model, frame in scores.groupby("model", sort=False):
        rows.append(_summary_row(str(model), "all", frame, n_resamples, seed))
        groups = frame.groupby(["label", "cue"], sort=True)
        if len(groups) > 1:
            for (label, cue), sub in groups:
                rows.append(_summary_row(str(model), group_name(label, cue), sub, n_resamples, seed))
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame, split: str) -> str:
    """The summary table as Markdown: ``mean [low, high]`` per metric."""
    lines = [
        f"# Grad-CAM audit on split `{split}`",
        "",
        "Slices with a hematoma mask. energy in mask: share of Grad-CAM energy inside the mask "
        "(energy pointing game); pointing hit: the map's maximum lies in the mask; mask area: share "
        "of the image the mask covers (chance level of both). Mean [95% bootstrap CI over patients]; map: the "
        "Grad-CAM map's size in cells (a hematoma smaller than a cell cannot be resolved); empty maps "
        "(all zero: no positive evidence for the class) are counted but left out of the means.",
        "",
        "| model | group | n | map | median hematoma, cells | empty maps | energy in mask | pointing hit "
        "| mask area (chance) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary.to_dict("records"):
        cells = [f"{row[m]:.3f} [{row[f'{m}_lo']:.3f}, {row[f'{m}_hi']:.3f}]" for m in METRICS]
        cells_text = f"{row['median_mask_cells']:.1f}" if np.isfinite(row.get("median_mask_cells", np.nan)) else ""
        head = f"| {row['model']} | {row['group']} | {row['n']} | {row.get('map', '')} | {cells_text} | "
        head += f"{row['n_empty_maps']} | "
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
