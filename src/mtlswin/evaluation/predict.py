"""``mtlswin predict RUN_OR_CKPT INPUT... --out DIR``: classify slices, volumes and series.

Inputs are expanded by :func:`mtlswin.data.volumes.expand_slices`: every DICOM, PNG/JPEG, ``.npy`` and NIfTI
file under a folder; a NIfTI volume gives EVERY slice (``vol.nii.gz#k``, last axis); DICOM files of one
series (same folder and ``SeriesInstanceUID``) give every slice in ``ImagePositionPatient`` order. Each slice
is read with :func:`mtlswin.data.readers.load_slice` (the run's HU window, or (40, 80) without a run config),
resized to the model's input like the training data, and classified. A file that cannot be read is skipped
with one line on stderr and a row of ``DIR/skipped.csv``; only when no input can be read is it an error. A slice
holding NaN or Inf is such a file (the readers refuse it by name), and so is a slice whose model output is not
finite: no row is written without a probability that was computed.

Writes:

- ``DIR/predictions.csv``: one row per slice, ``file, name, probability, predicted_label, scan, slice_index``
  (``scan``: the output name of the volume or series the slice belongs to, ``slice_index`` its 0-based
  position there; both empty for a lone slice such as a PNG or a DICOM file given by name);
- ``DIR/scans.csv`` (only when some input is a volume or series): one row per scan,
  ``scan, file, n_slices, max_probability, max_slice, max_name, predicted_label``: the largest positive-class
  probability over the scan's slices, the slice where it occurs (first one on ties) and that slice's name;
  ``predicted_label`` is ``max_probability >= threshold`` (a scan is positive when one slice is);
- for models with a segmentation head, ``DIR/overlays/<name>.png``: the slice with the predicted hematoma
  mask in red. With ``masks=False`` (``--no-masks``) a classifying model runs its classification path only
  (no decoder) and writes no overlay.

Every file is written atomically; a failed call that created ``DIR`` removes it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from mtlswin.data.inputs import SkipLog
from mtlswin.data.readers import load_slice
from mtlswin.data.transforms import resize_pair
from mtlswin.data.volumes import expand_slices
from mtlswin.io import atomic_path, created_dir
from mtlswin.runs import Run

__all__ = ["predict_files", "scan_table"]

COLUMNS = ["file", "name", "probability", "predicted_label", "scan", "slice_index"]
SCAN_COLUMNS = ["scan", "file", "n_slices", "max_probability", "max_slice", "max_name", "predicted_label"]


def _overlay(image: np.ndarray, mask: np.ndarray, prob: float | None, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn", alpha=0.45, vmin=0, vmax=1)
    ax.set_title(f"p(positive) = {prob:.3f}" if prob is not None else "segmentation", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


@torch.inference_mode()
def predict_files(
    run: str | Path, inputs: list[str | Path], out: Path, threshold: float | None = None, batch_size: int = 16,
    masks: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Predict every slice of ``inputs`` with the run (folder / .ckpt / .safetensors) ``run``; see module doc."""
    opened = Run.open(run)
    model, window = opened.model, opened.window
    threshold = threshold if threshold is not None else opened.threshold
    size = int(getattr(model.config, "img_size", 224))
    model_tasks = tuple(getattr(model, "tasks", ()))
    tasks = ("cls",) if not masks and "cls" in model_tasks else tuple(t for t in model_tasks if t != "rec")
    skipped = SkipLog()
    files = expand_slices(inputs, skipped)
    out = Path(out)
    with created_dir(out):
        rows = []
        for start in range(0, len(files), batch_size):
            chunk, images = [], []
            for item in files[start : start + batch_size]:
                try:
                    image = torch.from_numpy(load_slice(item.path, window))[None]
                except Exception as err:  # any reader error: pydicom, PIL, numpy, nibabel
                    skipped.skip(item.path, f"{type(err).__name__}: {err}")
                    continue
                chunk.append(item)
                images.append(resize_pair(image, torch.zeros(1, 1, dtype=torch.long), size)[0])
            if not chunk:
                continue
            outputs = model(torch.stack(images), tasks=tasks)
            probs = outputs["logits"].float().softmax(1)[:, 1].numpy() if "logits" in outputs else [None] * len(chunk)
            seg_masks = outputs["seg"].argmax(1).numpy() if "seg" in outputs else None
            finite = _finite_outputs(outputs, len(chunk))
            for i, item in enumerate(chunk):
                if not finite[i]:
                    skipped.skip(item.path, "the model's output is not finite (NaN or Inf): no prediction")
                    continue
                prob = None if probs[i] is None else float(probs[i])
                label = None if prob is None else int(prob >= threshold)
                rows.append({"file": str(item.path), "name": item.name, "probability": prob, "predicted_label": label,
                             "scan": item.scan, "slice_index": item.slice_index})  # fmt: skip
                if seg_masks is not None:
                    _overlay(images[i][0].numpy(), seg_masks[i], prob, out / "overlays" / f"{item.name}.png")
        skipped.write(out)
        if not rows:
            raise ValueError(
                f"none of the {len(skipped)} inputs could be read (see the lines above); "
                "give DICOM, PNG/JPEG, .npy or NIfTI files or folders holding them"
                if len(skipped) else f"no image files (DICOM, PNG/JPEG, .npy, NIfTI) in {[str(i) for i in inputs]}"
            )  # fmt: skip
        table = pd.DataFrame(rows, columns=COLUMNS)
        table["slice_index"] = table["slice_index"].astype("Int64")
        with atomic_path(out / "predictions.csv") as tmp:
            table.to_csv(tmp, index=False)
        scans = scan_table(table, threshold, {f.scan: f.scan_file for f in files if f.scan})
        (out / "scans.csv").unlink(missing_ok=True)
        if len(scans):
            with atomic_path(out / "scans.csv") as tmp:
                scans.to_csv(tmp, index=False)
    return table


def _finite_outputs(outputs: dict[str, torch.Tensor], n: int) -> list[bool]:
    """Per sample: whether every output the prediction reads (``logits``, ``seg``) is finite."""
    finite = torch.ones(n, dtype=torch.bool)
    for key in ("logits", "seg"):
        if key in outputs:
            finite &= torch.isfinite(outputs[key].float()).flatten(1).all(1)
    return finite.tolist()


def scan_table(table: pd.DataFrame, threshold: float, scan_files: dict[str, str | None]) -> pd.DataFrame:
    """One row per scan of the slice ``table`` (see the module docstring); empty without volumes or series."""
    rows = []
    for scan, group in table[table["scan"].notna()].groupby("scan", sort=False):
        group = group.sort_values("slice_index", kind="stable")
        probs = group["probability"].astype(float)
        if probs.isna().all():  # a model without a classifier: no probability to take the maximum of
            best, prob = group.iloc[0], None
        else:
            best = group.loc[probs.idxmax()]
            prob = float(best["probability"])
        rows.append({
            "scan": scan, "file": scan_files.get(scan), "n_slices": len(group), "max_probability": prob,
            "max_slice": int(best["slice_index"]), "max_name": best["name"],
            "predicted_label": None if prob is None else int(prob >= threshold),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=SCAN_COLUMNS)
