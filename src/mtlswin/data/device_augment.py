"""The augmentation of :mod:`mtlswin.data.transforms` applied to a whole batch on its device.

Same draws as the CPU path: each sample's parameters come from
``draw_params(policy, sample_rng(seed, epoch, index))`` on the CPU (:func:`draw_batch`, a few numbers
per sample). :func:`apply_batch` then applies them to a ``(B, 1, S, S)`` image batch and its
``(B, S, S)`` masks where they are (e.g. on the GPU, next to a device-resident cache):

- rotation by ``k * 90`` degrees and the flip: the batch is grouped by ``(k, axis)``; exact, equal to
  ``np.rot90`` / ``np.flip`` of the CPU path;
- the free rotation: Pillow's ``Image.rotate`` rewritten as gathers (no library rotates a batch the
  way Pillow does: ``grid_sample`` places sample points and handles the edge differently). For output
  pixel centre ``(x + 0.5, y + 0.5)`` the source point is Pillow's affine map of it (its coefficients
  rounded to 15 digits, as Pillow does); outside ``[0, S)`` the value is 0; inside, bilinear
  interpolation between the four neighbouring pixel centres with the neighbours clamped to the image
  (Pillow's edge rule), or nearest neighbour = the pixel containing the point. Coordinates and weights
  are float64, as in Pillow. Bilinear images equal Pillow's to float32 rounding; nearest-neighbour
  pixels can differ only where a source point falls exactly on a pixel border (Pillow's fixed-point
  fast path rounds those ties its own way), a handful of pixels in a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mtlswin.data.transforms import draw_params, sample_rng

__all__ = ["BatchDraws", "apply_batch", "draw_batch", "rotate_batch"]


@dataclass(frozen=True)
class BatchDraws:
    """One :class:`~mtlswin.data.transforms.AugmentParams` per sample, as NumPy columns (kept on the CPU:
    Lightning's device transfer leaves them alone, and grouping a batch needs no device sync)."""

    rot90_flip: np.ndarray  # (B,) bool
    k: np.ndarray  # (B,) int
    flip_axis: np.ndarray  # (B,) int: 0 flips rows, 1 flips columns
    rotate: np.ndarray  # (B,) bool
    angle: np.ndarray  # (B,) float64, degrees counter-clockwise
    nearest_image: np.ndarray  # (B,) bool

    def __len__(self) -> int:
        return len(self.k)


def draw_batch(policy: str, seed: int, epoch: int, indices) -> BatchDraws:
    """The draws of the samples ``indices`` (manifest rows) in ``epoch``: those of the CPU path."""
    params = [draw_params(policy, sample_rng(seed, epoch, int(i))) for i in indices]
    return BatchDraws(
        rot90_flip=np.array([p.rot90_flip for p in params], dtype=bool),
        k=np.array([p.k for p in params], dtype=np.int64),
        flip_axis=np.array([p.flip_axis for p in params], dtype=np.int64),
        rotate=np.array([p.rotate and p.angle != 0 for p in params], dtype=bool),
        angle=np.array([p.angle for p in params], dtype=np.float64),
        nearest_image=np.array([p.nearest_image for p in params], dtype=bool),
    )


def apply_batch(images: torch.Tensor, masks: torch.Tensor, draws: BatchDraws) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``draws`` to ``images (B, 1, S, S)`` float and ``masks (B, S, S)`` integer, on their device.

    Returns new tensors (the inputs are not modified): what ``transforms.apply_params`` gives per sample.
    """
    if images.ndim != 4 or images.shape[1] != 1 or masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"apply_batch: images (B, 1, S, S) and masks (B, S, S), got {tuple(images.shape)}, "
                         f"{tuple(masks.shape)}")  # fmt: skip
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(
            f"apply_batch: square images only (90-degree rotations keep the size), got {tuple(images.shape)}"
        )
    if len(draws) != images.shape[0]:
        raise ValueError(f"apply_batch: {len(draws)} draws for {images.shape[0]} images")
    images, masks = images.clone(), masks.clone()
    for k in range(4):
        for axis in (0, 1):
            rows = np.flatnonzero(draws.rot90_flip & (draws.k == k) & (draws.flip_axis == axis))
            if len(rows):
                sel = torch.as_tensor(rows, device=images.device)
                dim = -2 + axis  # axis 0 (rows) -> dim -2, axis 1 (columns) -> dim -1
                images[sel] = images[sel].rot90(k, dims=(-2, -1)).flip(dim)
                masks[sel] = masks[sel].rot90(k, dims=(-2, -1)).flip(dim)
    for nearest in (False, True):  # images: bilinear, or nearest neighbour (the authors' policy)
        rows = np.flatnonzero(draws.rotate & (draws.nearest_image == nearest))
        if len(rows):
            sel = torch.as_tensor(rows, device=images.device)
            images[sel, 0] = rotate_batch(images[sel, 0], draws.angle[rows], nearest=nearest)
    rows = np.flatnonzero(draws.rotate)
    if len(rows):  # masks: always nearest neighbour
        sel = torch.as_tensor(rows, device=images.device)
        masks[sel] = rotate_batch(masks[sel], draws.angle[rows], nearest=True)
    return images, masks


def _pillow_matrix(angle: float, size: int) -> tuple[float, ...]:
    """Pillow's ``Image.rotate`` affine map (output pixel coordinates -> input), centre ``(size/2, size/2)``."""
    a = -math.radians(angle)
    m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0, round(-math.sin(a), 15), round(math.cos(a), 15), 0.0]
    centre = size / 2.0
    m[2] = m[0] * -centre + m[1] * -centre + centre
    m[5] = m[3] * -centre + m[4] * -centre + centre
    return tuple(m)


def rotate_batch(x: torch.Tensor, angles, nearest: bool) -> torch.Tensor:
    """Rotate each ``(S, S)`` map of ``x (n, S, S)`` counter-clockwise by its angle (degrees), zero fill, as
    Pillow's ``Image.rotate`` does (bilinear, or nearest neighbour); same dtype as ``x``."""
    n, size = x.shape[0], x.shape[-1]
    dev = x.device
    coef = torch.tensor([_pillow_matrix(float(a), size) for a in angles], dtype=torch.float64, device=dev)  # n, 6
    centres = torch.arange(size, dtype=torch.float64, device=dev) + 0.5
    yo, xo = centres[None, :, None], centres[None, None, :]
    c = coef[:, :, None, None]
    xin = c[:, 0] * xo + c[:, 1] * yo + c[:, 2]  # n, S, S: source point of each output pixel
    yin = c[:, 3] * xo + c[:, 4] * yo + c[:, 5]
    inside = (xin >= 0) & (xin < size) & (yin >= 0) & (yin < size)
    flat = x.reshape(n, size * size)

    def at(iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        index = (iy.clamp(0, size - 1) * size + ix.clamp(0, size - 1)).reshape(n, -1)
        return flat.gather(1, index).reshape(n, size, size)

    if nearest:
        out = at(yin.floor().long(), xin.floor().long())
        return torch.where(inside, out, torch.zeros((), dtype=x.dtype, device=dev))
    xs, ys = xin - 0.5, yin - 0.5
    x0, y0 = xs.floor(), ys.floor()
    dx, dy = xs - x0, ys - y0
    x0, y0 = x0.long(), y0.long()
    v00, v01 = at(y0, x0).double(), at(y0, x0 + 1).double()
    v10, v11 = at(y0 + 1, x0).double(), at(y0 + 1, x0 + 1).double()
    top = v00 + (v01 - v00) * dx  # Pillow: BILINEAR(dx, in[x0], in[x1]) per row, then between the rows
    bottom = v10 + (v11 - v10) * dx
    out = (top + (bottom - top) * dy).to(x.dtype)
    return torch.where(inside, out, torch.zeros((), dtype=x.dtype, device=dev))
