"""Grad-CAM of image files: ``<name>_cam.npy`` and ``<name>_overlay.png`` per input (``mtlswin gradcam``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mtlswin.explain.figures import save_overlay
from mtlswin.explain.gradcam import LogitsOnly, compute_cam
from mtlswin.explain.runs import load_explained_run

__all__ = ["gradcam_files", "load_input"]


def _model_size(model: torch.nn.Module, data: dict[str, Any]) -> int:
    return int(data.get("img_size") or getattr(getattr(model, "config", None), "img_size", 224))


def _stem(path: str | Path) -> str:
    """Output name of an input: file name without extensions, plus ``_<k>`` for a volume slice ``vol.nii.gz#k``."""
    from mtlswin.data.readers import split_slice

    file, k = split_slice(path)
    name = Path(file).name.split(".")[0]
    return name if k is None else f"{name}_{k}"


def load_input(path: str | Path, img_size: int, window: Any = (40, 80), mask: bool = False) -> torch.Tensor:
    """A slice file (DICOM, NIfTI[#k], .npy, PNG) -> windowed ``(1, 1, S, S)`` in [0, 1] (or a mask, nearest).

    Images are resized bilinearly (with antialiasing), masks by nearest neighbour, to ``img_size``.
    """
    from mtlswin.data.readers import load_mask, load_slice

    if mask:
        arr = torch.from_numpy(load_mask(path).astype(np.float32))[None, None]
        return F.interpolate(arr, size=(img_size, img_size), mode="nearest")
    window = window if isinstance(window, str) else tuple(window)
    arr = torch.from_numpy(load_slice(path, window=window))[None, None]
    if arr.shape[-2:] == (img_size, img_size):
        return arr
    return F.interpolate(arr, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True).clamp(
        0, 1
    )


def gradcam_files(
    run_path: str | Path,
    inputs: list[str | Path],
    out: str | Path,
    masks: list[str | Path] | None = None,
    method: str = "gradcam",
    target_class: int = 1,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
    window: Any = None,
) -> list[Path]:
    """Explain each file of ``inputs`` with the model of ``run_path``; returns the files written.

    ``masks``: one mask file per input (outlined on the overlay). ``window``: HU window
    (center, width) or "file"; default the run's ``data.window``, else (40, 80).
    The map is at the model's input size (the image is resized to it).
    """
    if masks and len(masks) != len(inputs):
        raise ValueError(f"got {len(masks)} masks for {len(inputs)} inputs; give one --mask per input or none")
    run = load_explained_run(run_path)
    size = _model_size(run.model, run.data)
    window = window or run.data.get("window", (40, 80))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, path in enumerate(inputs):
        image = load_input(path, size, window)
        cam = compute_cam(run.model, image, method, target_class, aug_smooth, eigen_smooth)[0]
        with torch.no_grad():
            prob = torch.softmax(LogitsOnly(run.model).eval()(image), dim=-1)[0, target_class].item()
        mask = load_input(masks[k], size, mask=True)[0, 0].numpy() if masks else None
        stem = _stem(path)
        np.save(out / f"{stem}_cam.npy", cam)
        title = f"{run.name}: {method}, p(class {target_class})={prob:.2f}"
        save_overlay(out / f"{stem}_overlay.png", image[0, 0].numpy(), cam, mask, title)
        written += [out / f"{stem}_cam.npy", out / f"{stem}_overlay.png"]
    return written
