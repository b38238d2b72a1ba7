"""Figures of Grad-CAM maps: one overlay per slice, and the audit's slices x models grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["GridCell", "draw_overlay", "save_grid", "save_overlay"]

MASK_COLOUR = "lime"


def draw_overlay(ax, image: np.ndarray, cam: np.ndarray | None = None, mask: np.ndarray | None = None) -> None:
    """Windowed ``image (H, W)`` in [0, 1] in grey, ``cam (H, W)`` in [0, 1] as a jet heat map, ``mask`` outlined."""
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if cam is not None:
        if cam.shape != image.shape:
            raise ValueError(f"cam {cam.shape} and image {image.shape} differ in size; resize the cam first")
        ax.imshow(cam, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.45, interpolation="bilinear")
    if mask is not None and np.any(mask):
        ax.contour(np.asarray(mask) > 0, levels=[0.5], colors=MASK_COLOUR, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def save_overlay(
    path: str | Path, image: np.ndarray, cam: np.ndarray, mask: np.ndarray | None = None, title: str = ""
) -> Path:
    """Write one overlay PNG (image, heat map, mask outline if given) and return its path."""
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_overlay(ax, image, cam, mask)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


@dataclass
class GridCell:
    """One panel of the grid: image ``(H, W)``, optional map and mask of the same size, and a caption."""

    image: np.ndarray
    cam: np.ndarray | None
    mask: np.ndarray | None
    caption: str


def save_grid(path: str | Path, rows: list[list[GridCell]], column_titles: list[str], row_titles: list[str]) -> Path:
    """Write a grid PNG: ``rows[i][j]`` is the panel of slice ``i`` under column ``j``."""
    if not rows or any(len(r) != len(column_titles) for r in rows) or len(row_titles) != len(rows):
        raise ValueError(
            f"grid needs {len(row_titles)} rows of {len(column_titles)} panels each, got {[len(r) for r in rows]}"
        )
    n_rows, n_cols = len(rows), len(column_titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.4 * n_cols, 2.5 * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            ax = axes[i, j]
            draw_overlay(ax, cell.image, cell.cam, cell.mask)
            ax.set_xlabel(cell.caption, fontsize=7)
            if i == 0:
                ax.set_title(column_titles[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
