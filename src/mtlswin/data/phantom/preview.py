"""Preview gallery of a written phantom: a few slices per marker and negatives, brain window 40/80,
mask outline in red. Reads the files back (manifest, DICOM via pydicom, PNG masks), so the gallery
also shows that what was written decodes correctly."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from mtlswin.data.phantom.generate import MARKERS
from mtlswin.io import atomic_path

ROWS = (*MARKERS, "negative")


def _pick(rows: list[dict[str, str]], kind: str, per_row: int) -> list[dict[str, str]]:
    """Up to ``per_row`` slices of distinct patients: positives of ``kind`` with a mask first, or
    slices without a hematoma (half with cue 0, half with cue 1) for ``negative``."""
    if kind == "negative":
        pools = [[r for r in rows if not any(int(r[m]) for m in MARKERS) and r["cue"] == c] for c in ("0", "1")]
    else:  # positives with a mask first
        pools = [[r for r in rows if int(r[kind]) and r["mask"]] + [r for r in rows if int(r[kind]) and not r["mask"]]]
    chosen, seen = [], set()
    for i in range(max(len(p) for p in pools)):
        for pool in pools:
            if i < len(pool) and pool[i]["patient_id"] not in seen and len(chosen) < per_row:
                chosen.append(pool[i])
                seen.add(pool[i]["patient_id"])
    return chosen


def _crop(mask: np.ndarray | None, shape: tuple[int, int], zoom: float) -> tuple[slice, slice]:
    """A square ``1/zoom`` of the image centred on the mask (the whole image without a mask)."""
    if mask is None or not mask.any() or zoom <= 1:
        return slice(None), slice(None)
    side = int(shape[0] / zoom)
    rows, cols = np.nonzero(mask)
    r0 = int(np.clip(rows.mean() - side / 2, 0, shape[0] - side))
    c0 = int(np.clip(cols.mean() - side / 2, 0, shape[1] - side))
    return slice(r0, r0 + side), slice(c0, c0 + side)


def write_gallery(root: str | Path, path: str | Path | None = None, per_row: int = 4, zoom: float = 2.0) -> Path:
    """Write ``root/preview.png`` (or ``path``): one row per marker plus negatives (whole slices, half
    with and half without the cue); slices with a mask are shown zoomed ``zoom`` times on the
    hematoma, slices without one (hospitals 5-11) whole."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(root)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    path = Path(path) if path is not None else root / "preview.png"
    fig, axes = plt.subplots(len(ROWS), per_row, figsize=(3 * per_row, 3.2 * len(ROWS)), squeeze=False)
    for ax_row, kind in zip(axes, ROWS):
        picks = _pick(rows, kind, per_row)
        for j, ax in enumerate(ax_row):
            ax.axis("off")
            if j >= len(picks):
                continue
            r = picks[j]
            ds = pydicom.dcmread(root / r["image"])
            hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            mask = np.asarray(Image.open(root / r["mask"])) > 0 if r["mask"] else None
            win = _crop(mask, hu.shape, zoom)
            ax.imshow(np.clip((hu[win] - 0.0) / 80.0, 0, 1), cmap="gray", vmin=0, vmax=1)
            if mask is not None:
                ax.contour(mask[win], levels=[0.5], colors="red", linewidths=0.8)
            on = [m for m in MARKERS if int(r[m])]
            ax.set_title(f"{kind}\n{r['patient_id']} cue={r['cue']}\n{'+'.join(on) or 'no marker'}", fontsize=7)
    fig.tight_layout()

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path
