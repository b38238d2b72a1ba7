"""Attribution maps (Grad-CAM and the other methods of :mod:`mtlswin.explain.attribution`) of image files: ``<name>_cam.npy`` and ``<name>_overlay.png`` per input (``mtlswin gradcam``).

Inputs (files, folders) are found by :func:`mtlswin.data.inputs.find_images`; ``<name>`` is the input's unique
output name (its path relative to the input folder). Unreadable inputs are skipped (one line each,
``skipped.csv``); only when none can be read is it an error. A slice holding NaN or Inf is refused by the readers
and skipped so, and so is one whose map or probability is not finite. Maps that are all zero (no positive evidence
for the class) are counted and reported. Files are written atomically; a failed call that created the
output folder removes it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mtlswin.data.inputs import SkipLog, find_images
from mtlswin.data.readers import load_mask, load_slice
from mtlswin.explain.attribution import attribute
from mtlswin.explain.defaults import default_method, default_stage, not_evidence
from mtlswin.explain.figures import save_overlay
from mtlswin.explain.gradcam import CAM_METHODS, LogitsOnly, compute_cam
from mtlswin.explain.targets import cam_spec
from mtlswin.io import atomic_path, created_dir
from mtlswin.runs import Run

__all__ = ["gradcam_files", "load_input"]


def load_input(path: str | Path, img_size: int, window: Any = (40, 80), mask: bool = False) -> torch.Tensor:
    """A slice file (DICOM, NIfTI[#k], .npy, PNG) -> windowed ``(1, 1, S, S)`` in [0, 1] (or a mask, nearest).

    Images are resized bilinearly (with antialiasing), masks by nearest neighbour, to ``img_size``.
    """
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
    method: str | None = None,
    target_class: int = 1,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
    window: Any = None,
    log: Callable[[str], None] | None = None,
    stage: int | None = None,
) -> list[Path]:
    """Explain each file of ``inputs`` with the model of ``run_path``; returns the files written.

    ``masks``: one mask file per input (outlined on the overlay). ``window``: HU window
    (center, width) or "file"; default the run's ``data.window``, else (40, 80). ``method``: an attribution
    method of :mod:`mtlswin.explain.attribution`, default the model family's (:mod:`mtlswin.explain.defaults`);
    ``stage``: the Swin stage CAM methods map (default the family's: the finest); ``aug_smooth``/``eigen_smooth``
    apply to CAM methods only.
    The map is at the model's input size (the image is resized to it). ``log``: where the lines about skipped
    inputs and all-zero maps go (default stderr).
    """
    if masks and len(masks) != len(inputs):
        raise ValueError(f"got {len(masks)} masks for {len(inputs)} inputs; give one --mask per input or none")
    run = Run.open(run_path)
    method = method or default_method(run.model)
    spec = cam_spec(run.model, default_stage(run.model) if stage is None else stage)
    if (aug_smooth or eigen_smooth) and method not in CAM_METHODS:
        raise ValueError(f"--aug-smooth / --eigen-smooth are options of CAM methods; {method!r} maps the input")
    size, window = run.img_size, window or run.window
    skipped = SkipLog(report=log) if log is not None else SkipLog()
    report = log or (lambda line: print(line, file=sys.stderr))
    mask_of = {str(Path(p)): m for p, m in zip(inputs, masks)} if masks else {}
    items = find_images(inputs, skipped)
    out = Path(out)
    written, zero = [], []
    with created_dir(out):
        for item in items:
            try:
                image = load_input(item.path, size, window)
                mask_file = mask_of.get(str(Path(item.path)))
                mask = load_input(mask_file, size, mask=True)[0, 0].numpy() if mask_file else None
            except Exception as err:  # any reader error: pydicom, PIL, numpy, nibabel
                skipped.skip(item.path, f"{type(err).__name__}: {err}")
                continue
            if method in CAM_METHODS:
                cam = compute_cam(run.model, image, method, target_class, aug_smooth, eigen_smooth, spec=spec)[0]
            else:
                cam = attribute(run.model, image, method, target_class)[0]
            with torch.no_grad():
                prob = torch.softmax(LogitsOnly(run.model).eval()(image), dim=-1)[0, target_class].item()
            if not (np.isfinite(prob) and np.isfinite(cam).all()):
                skipped.skip(item.path, "the model's output or its map is not finite (NaN or Inf): no map")
                continue
            if not np.any(cam > 0):
                zero.append(item.name)
            with atomic_path(out / f"{item.name}_cam.npy") as tmp, open(tmp, "wb") as handle:
                np.save(handle, cam)
            title = f"{run.name}: {method}, p(class {target_class})={prob:.2f}"
            with atomic_path(out / f"{item.name}_overlay.png") as tmp:
                save_overlay(tmp, image[0, 0].numpy(), cam, mask, title)
            written += [out / f"{item.name}_cam.npy", out / f"{item.name}_overlay.png"]
        skipped.write(out)
        if not written:
            raise ValueError(
                f"none of the {len(skipped)} inputs could be read (see the lines above)"
                if len(skipped) else f"no image files (DICOM, PNG/JPEG, .npy, NIfTI) in {[str(i) for i in inputs]}"
            )  # fmt: skip
    reason = not_evidence(run.model) if method == default_method(run.model) else None
    if reason:
        report(f"these maps are not evidence of where {run.name} looks: {reason} (docs/explanations.md)")
    if zero:
        report(
            f"{len(zero)} of {len(written) // 2} maps are all zero (no positive evidence for class "
            f"{target_class}; the overlay shows no heat): {', '.join(zero[:5])}{' ...' if len(zero) > 5 else ''}"
        )
    return written
