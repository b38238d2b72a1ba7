"""``mtlswin predict RUN_OR_CKPT INPUT... --out DIR``: classify slices from DICOM files or folders.

Each slice is read with :func:`mtlswin.data.readers.load_slice` (the run's HU window, or (40, 80) without a
run config), resized to the model's input like the training data, and classified. Writes
``DIR/predictions.csv`` (``file, probability, predicted_label``) and, for models with a segmentation head,
``DIR/overlays/<file stem>.png``: the slice with the predicted hematoma mask in red. With ``masks=False``
(``--no-masks``) a classifying model runs its classification path only (no decoder) and writes no overlay.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

__all__ = ["find_inputs", "predict_files"]

_SKIP_SUFFIXES = {".csv", ".txt", ".json", ".md", ".yaml", ".yml", ".png", ".jpg", ".jpeg"}


def find_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, and every DICOM-looking file (``.dcm``/``.ima``/no suffix/digits) under folders, sorted."""
    from mtlswin.data.readers import file_kind

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for f in sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() not in _SKIP_SUFFIXES):
                try:
                    if file_kind(f) == "dicom":
                        files.append(f)
                except ValueError:
                    continue
        elif item.is_file():
            files.append(item)
        else:
            raise ValueError(f"input {str(item)!r} does not exist: give DICOM files or folders holding them")
    if not files:
        raise ValueError(f"no DICOM files found in {[str(i) for i in inputs]}")
    return files


def _overlay(image: np.ndarray, mask: np.ndarray, prob: float | None, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn", alpha=0.45, vmin=0, vmax=1)
    ax.set_title(f"p(positive) = {prob:.3f}" if prob is not None else "segmentation", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.inference_mode()
def predict_files(
    run: str | Path, inputs: list[str | Path], out: Path, threshold: float | None = None, batch_size: int = 16,
    masks: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Predict every slice of ``inputs`` with the run (folder / .ckpt / .safetensors) ``run``; see module doc."""
    from mtlswin.data.readers import load_slice
    from mtlswin.data.transforms import resize_pair
    from mtlswin.training.run import load_run

    config, model = load_run(run)
    window = config.data.window if config is not None else (40, 80)
    threshold = threshold if threshold is not None else (config.train.threshold if config is not None else 0.5)
    size = int(getattr(model.config, "img_size", 224))
    model_tasks = tuple(getattr(model, "tasks", ()))
    tasks = ("cls",) if not masks and "cls" in model_tasks else tuple(t for t in model_tasks if t != "rec")
    files = find_inputs(inputs)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        images = [resize_pair(torch.from_numpy(load_slice(f, window))[None], torch.zeros(1, 1, dtype=torch.long), size)[0]
                  for f in chunk]  # fmt: skip
        outputs = model(torch.stack(images), tasks=tasks)
        probs = outputs["logits"].float().softmax(1)[:, 1].numpy() if "logits" in outputs else [None] * len(chunk)
        seg_masks = outputs["seg"].argmax(1).numpy() if "seg" in outputs else None
        for i, f in enumerate(chunk):
            prob = None if probs[i] is None else float(probs[i])
            rows.append(
                {
                    "file": str(f),
                    "probability": prob,
                    "predicted_label": None if prob is None else int(prob >= threshold),
                }
            )
            if seg_masks is not None:
                (out / "overlays").mkdir(exist_ok=True)
                _overlay(images[i][0].numpy(), seg_masks[i], prob, out / "overlays" / f"{start + i:05d}_{f.stem}.png")
    table = pd.DataFrame(rows, columns=["file", "probability", "predicted_label"])
    table.to_csv(out / "predictions.csv", index=False)
    return table
