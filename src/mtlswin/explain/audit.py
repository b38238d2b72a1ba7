"""Spurious-correlation audit: does a classifier's map sit on the hematoma, or on the spurious cue?

For one slice with a hematoma mask ``M (H, W)`` (bool), a map ``S (H, W) >= 0`` and, where the slice has a
counterfactual twin, its cue region ``C (H, W)`` (the pixels where the slice and its cue-flipped twin differ):

- ``energy_in_mask = sum(S * M) / sum(S)``: the energy-based pointing game (Wang et al., Score-CAM
  2020); NaN for an all-zero map (no energy to place). 1 = all energy on the hematoma.
- ``pointing_hit = M[argmax S]``: the pointing game (Zhang et al. 2016); the argmax is numpy's
  first maximum in row-major order, so ties are broken the same way for every model; NaN for an
  all-zero map (it has no maximum).
- ``mask_area = mean(M)``: the chance baseline; a map spread uniformly scores ``energy_in_mask =
  mask_area``, and a random maximum hits with probability ``mask_area``.
- ``mask_x_chance = energy_in_mask / mask_area``: the energy as a multiple of chance (1 = no better than a
  uniform map); the claims compare models on it.
- ``energy_in_cue``, ``cue_area`` and ``cue_x_chance``: the same for the cue region (NaN without a twin, or
  when the twin does not differ).

Aggregates are means with percentile-bootstrap 95% intervals (:func:`mtlswin.stats.bootstrap_ci`, fixed
seed; whole patients are resampled when the scores carry ``patient_id``), per model and per (label, cue) group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtlswin.stats import bootstrap_ci

__all__ = [
    "CUE_THRESHOLD",
    "METRICS",
    "cue_regions",
    "finite_mean",
    "group_name",
    "mean_ci",
    "slice_scores",
    "summarise",
    "summary_markdown",
]

METRICS = ("energy_in_mask", "pointing_hit", "mask_area", "mask_x_chance", "energy_in_cue", "cue_area", "cue_x_chance")
CUE_THRESHOLD = 1.0 / 255  # a pixel belongs to the cue region when slice and twin differ by more (one grey level)


def _check_pair(cams: np.ndarray, masks: np.ndarray) -> None:
    if cams.ndim != 3 or cams.shape != masks.shape:
        raise ValueError(f"cams and masks must both be (N, H, W), got {cams.shape} and {masks.shape}")
    if (cams < 0).any():
        raise ValueError("cams must be >= 0 (Grad-CAM maps after ReLU); got a negative value")
    empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
    if empty.size:
        raise ValueError(f"masks of slices {empty.tolist()} are empty; audit only slices that have a hematoma mask")


def cue_regions(images: np.ndarray, twins: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool: where each windowed image and its twin (both in [0, 1]) differ by more than
    :data:`CUE_THRESHOLD`. A twin of NaN (no twin) gives an empty region."""
    images, twins = np.asarray(images, dtype=np.float64), np.asarray(twins, dtype=np.float64)
    if images.shape != twins.shape:
        raise ValueError(f"images and twins must have one shape, got {images.shape} and {twins.shape}")
    with np.errstate(invalid="ignore"):
        return np.abs(images - twins) > CUE_THRESHOLD


def _share(flat_cam: np.ndarray, total: np.ndarray, region: np.ndarray) -> np.ndarray:
    inside = (flat_cam * region).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def _ratio(energy: np.ndarray, area: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, energy / np.where(area > 0, area, 1.0), np.nan)


def slice_scores(cams: np.ndarray, masks: np.ndarray, cues: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-slice audit numbers for ``cams (N, H, W) >= 0``, non-empty ``masks (N, H, W)`` and, optionally,
    ``cues (N, H, W)`` bool cue regions (:func:`cue_regions`; an empty one: no twin).

    Returns arrays of length N: ``energy_in_mask`` (float), ``pointing_hit`` (0/1 float), both NaN
    for an all-zero map, ``mask_area`` (float), ``mask_x_chance``, and ``energy_in_cue``, ``cue_area``,
    ``cue_x_chance`` (NaN without a cue region); formulas in the module docstring.
    """
    cams = np.asarray(cams, dtype=np.float64)
    masks = np.asarray(masks) > 0
    _check_pair(cams, masks)
    flat_cam = cams.reshape(len(cams), -1)
    flat_mask = masks.reshape(len(masks), -1)
    total = flat_cam.sum(axis=1)
    energy = _share(flat_cam, total, flat_mask)
    hit = flat_mask[np.arange(len(flat_cam)), flat_cam.argmax(axis=1)].astype(np.float64)
    hit[total <= 0] = np.nan
    area = flat_mask.mean(axis=1)
    out = {"energy_in_mask": energy, "pointing_hit": hit, "mask_area": area, "mask_x_chance": _ratio(energy, area)}
    if cues is None:
        nan = np.full(len(cams), np.nan)
        return {**out, "energy_in_cue": nan, "cue_area": nan.copy(), "cue_x_chance": nan.copy()}
    cues = np.asarray(cues) > 0
    if cues.shape != cams.shape:
        raise ValueError(f"cue regions must be (N, H, W) like the maps, got {cues.shape} and {cams.shape}")
    flat_cue = cues.reshape(len(cues), -1)
    has_cue = flat_cue.any(axis=1)
    cue_energy = np.where(has_cue, _share(flat_cam, total, flat_cue), np.nan)
    cue_area = np.where(has_cue, flat_cue.mean(axis=1), np.nan)
    return {**out, "energy_in_cue": cue_energy, "cue_area": cue_area, "cue_x_chance": _ratio(cue_energy, cue_area)}


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


CORE = ("energy_in_mask", "pointing_hit", "mask_area")  # every scores table has these; the cue ones may be NaN


def summarise(scores: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per model ("all" slices) and per model x (label, cue) group, with bootstrap CIs.

    ``scores`` has columns ``model``, ``label``, ``cue`` (-1 = none) and :data:`METRICS` (a table of an older
    audit without the cue columns gets them as NaN). Output columns: ``model, group, n, n_empty_maps`` (all-zero
    maps, left out of the means) then each metric with ``_lo``/``_hi`` bounds.
    """
    missing = {"model", "label", "cue", *CORE} - set(scores.columns)
    if missing:
        raise ValueError(f"scores lack columns {sorted(missing)}; build them with slice_scores()")
    scores = scores.copy()
    if "mask_x_chance" not in scores:
        scores["mask_x_chance"] = _ratio(scores["energy_in_mask"].to_numpy(), scores["mask_area"].to_numpy())
    for metric in METRICS:
        if metric not in scores:
            scores[metric] = np.nan
    rows = []
    for model, frame in scores.groupby("model", sort=False):
        rows.append(_summary_row(str(model), "all", frame, n_resamples, seed))
        groups = frame.groupby(["label", "cue"], sort=True)
        if len(groups) > 1:
            for (label, cue), sub in groups:
                rows.append(_summary_row(str(model), group_name(label, cue), sub, n_resamples, seed))
    return pd.DataFrame(rows)


SHOWN = (("mask_x_chance", "mask, x chance"), ("cue_x_chance", "cue region, x chance"),
         ("energy_in_mask", "energy in mask"), ("energy_in_cue", "energy in cue region"),
         ("pointing_hit", "pointing hit"), ("mask_area", "mask area"), ("cue_area", "cue area"))  # fmt: skip


def _cell(row: dict, metric: str) -> str:
    value = row.get(metric, np.nan)
    if not np.isfinite(value):
        return ""
    low, high = row.get(f"{metric}_lo", np.nan), row.get(f"{metric}_hi", np.nan)
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if np.isfinite(low) else f"{value:.3f}"


def _sanity_text(row: dict) -> str:
    if "sanity_pass" not in row or row["sanity_pass"] is None or pd.isna(row["sanity_pass"]):
        return ""
    verdict = "passes" if bool(row["sanity_pass"]) else "**fails**"
    reason = row.get("not_evidence")
    if isinstance(reason, str) and reason:
        verdict = "**not evidence**: " + reason + ";"
    rho, ssim = row.get("sanity_spearman"), row.get("sanity_ssim")
    if rho is None or ssim is None or not (np.isfinite(rho) and np.isfinite(ssim)):
        return verdict
    return f"{verdict} (rho {rho:.2f}, SSIM {ssim:.2f})"


def summary_markdown(summary: pd.DataFrame, split: str) -> str:
    """The summary table as Markdown: ``mean [low, high]`` per metric, with each model's method and sanity check."""
    lines = [
        f"# Attribution audit on split `{split}`",
        "",
        "Slices with a hematoma mask. x chance: the share of the map's energy inside the hematoma mask (or the cue "
        "region: the pixels where the slice and its cue-flipped twin differ) divided by the region's share of the "
        "image; 1 = no better than a uniform map. Pointing hit: the map's maximum lies in the mask. Mean [95% "
        "bootstrap CI over patients]; map: the map's size in cells (a hematoma smaller than a cell cannot be "
        "resolved); empty maps (all zero: no positive evidence for the class) are counted but left out of the means. "
        "Sanity: the similarity (Spearman rho, SSIM) between the model's maps and those of the same model with every "
        "weight it uses redrawn at random; a method at 0.5 or above on either fails and its maps are not evidence "
        "(docs/explanations.md).",
        "",
        "| model | method | sanity | group | n | map | median hematoma, cells | empty maps | "
        + " | ".join(title for _, title in SHOWN)
        + " |",
        "|" + "---|" * (8 + len(SHOWN)),
    ]
    for row in summary.to_dict("records"):
        cells_text = f"{row['median_mask_cells']:.1f}" if np.isfinite(row.get("median_mask_cells", np.nan)) else ""
        first = row["group"] == "all"
        head = [str(row["model"]), str(row.get("method", "")) if first else "", _sanity_text(row) if first else "",
                str(row["group"]), str(row["n"]), str(row.get("map", "")), cells_text, str(row["n_empty_maps"])]  # fmt: skip
        lines.append("| " + " | ".join(head + [_cell(row, m) for m, _ in SHOWN]) + " |")
    return "\n".join(lines) + "\n"
