"""Augmentation and resizing that move an image and its mask with ONE random draw.

Policies (selected by name, ``data.augment``):

- ``"paper"`` (SPEC "Training"), two independent branches, each with probability 0.5:
  1. rotation by ``k * 90`` degrees, ``k ~ U{0..3}``, then a flip along a random axis
     (vertical or horizontal, each 1/2);
  2. rotation by ``angle ~ U[-20, 20]`` degrees (bilinear for the image, nearest for the mask).
- ``"authors"`` (the authors' code, /work/shared/reference/README.md): with probability 0.5 the
  90-degree rotation + flip; otherwise, with probability 0.5, a rotation by an integer angle in
  [-20, 19] with nearest-neighbour interpolation for image and mask alike (so the rotation
  happens in 25% of the samples, never together with branch 1).
- ``"none"``.

Then both are resized to the model's input size (bilinear with antialiasing for the image,
nearest for the mask). Pillow does the resampling (see :func:`resize_image` for why); the draw is a
pure function of ``(seed, epoch, index)`` through ``numpy.random.Generator`` (:func:`sample_rng`),
so a sample's augmentation does not depend on the number of workers or on where a run resumed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image

POLICIES = ("paper", "authors", "none")


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """One draw. ``flip_axis`` 0 flips rows (vertical), 1 flips columns (horizontal)."""

    rot90_flip: bool = False
    k: int = 0
    flip_axis: int = 0
    rotate: bool = False
    angle: float = 0.0
    nearest_image: bool = False  # the authors' rotation uses nearest for the image too


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's draw: a pure function of (seed, epoch, index)."""
    if min(seed, epoch, index) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def draw_params(policy: str, rng: np.random.Generator, p: float = 0.5, max_angle: float = 20.0) -> AugmentParams:
    """Draw one augmentation. Every policy consumes the generator in a fixed order."""
    if policy == "none":
        return AugmentParams()
    if policy == "paper":
        u_a, k, axis, u_b = rng.random(), int(rng.integers(4)), int(rng.integers(2)), rng.random()
        angle = float(rng.uniform(-max_angle, max_angle))
        return AugmentParams(u_a < p, k, axis, bool(u_b < p), angle)
    if policy == "authors":
        u_a, k, axis, u_b = rng.random(), int(rng.integers(4)), int(rng.integers(2)), rng.random()
        angle = float(rng.integers(-int(max_angle), int(max_angle)))  # [-20, 19] as np.random.randint(-20, 20)
        first = bool(u_a < p)
        return AugmentParams(first, k, axis, (not first) and bool(u_b < p), angle, nearest_image=True)
    raise ValueError(f"augment policy must be one of {POLICIES}, got {policy!r}")


def _rotate(arr: np.ndarray, angle: float, nearest: bool) -> np.ndarray:
    """Rotate a 2-D array counter-clockwise about its centre, same size, zero fill.

    Pillow (float32 'F', uint8 'L' or int32 'I' images): single-threaded and ~4x cheaper than
    torchvision's grid_sample on CPU, with the same result (max difference ~1e-5).
    """
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    if np.issubdtype(arr.dtype, np.floating):
        mode_dtype = np.float32
    else:
        mode_dtype = np.uint8 if arr.dtype == np.uint8 else np.int32
    out = Image.fromarray(np.ascontiguousarray(arr, dtype=mode_dtype)).rotate(angle, resample=resample)
    return np.array(out, dtype=arr.dtype)  # a writable copy


def apply_params(image: torch.Tensor, mask: torch.Tensor, params: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a draw to ``image (1, H, W)`` float and ``mask (H, W)`` integer alike.

    Rotation is counter-clockwise by ``angle`` degrees about the image centre (bilinear for the image,
    nearest for the mask), with zero fill.
    """
    img, msk = augment_arrays(image[0].numpy(), mask.numpy(), params)
    return torch.from_numpy(np.ascontiguousarray(img))[None], torch.from_numpy(np.ascontiguousarray(msk))


def augment_arrays(img: np.ndarray, msk: np.ndarray, params: AugmentParams) -> tuple[np.ndarray, np.ndarray]:
    """:func:`apply_params` on ``(H, W)`` arrays; the results may be views of the inputs (not contiguous)."""
    if params.rot90_flip:
        img, msk = np.rot90(img, params.k), np.rot90(msk, params.k)
        img, msk = np.flip(img, params.flip_axis), np.flip(msk, params.flip_axis)
    if params.rotate and params.angle != 0:
        img = _rotate(img, params.angle, params.nearest_image)
        msk = _rotate(msk, params.angle, nearest=True)
    return img, msk


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a float32 ``(H, W)`` slice to ``(size, size)``: bilinear, antialiased, clipped to [0, 1].

    Pillow does the resampling (here and in :func:`resize_mask`, :func:`_rotate`): its antialiased
    bilinear equals torch's ``antialias=True`` bilinear (max difference ~1e-5), but it is
    single-threaded, whereas torch's intra-op threads slow a per-slice op down ~10x when several
    processes share a few cores.
    """
    if image.shape == (size, size):
        return image
    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out), 0.0, 1.0)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize an integer ``(H, W)`` mask to ``(size, size)`` with nearest neighbour (dtype kept)."""
    if mask.shape == (size, size):
        return mask
    small = mask.dtype == np.uint8
    pil = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8 if small else np.int32))
    return np.array(pil.resize((size, size), Image.Resampling.NEAREST), dtype=mask.dtype)


def resize_pair(image: torch.Tensor, mask: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize ``image (1, H, W)`` (bilinear, antialiased) and ``mask (H, W)`` (nearest) to ``size x size``."""
    if image.shape[-2:] != (size, size):
        image = torch.from_numpy(resize_image(image[0].numpy(), size))[None]
    if mask.shape[-2:] != (size, size):
        mask = torch.from_numpy(resize_mask(mask.numpy(), size))
    return image, mask


class PairTransform:
    """Dictionary transform: ``{"image": (1,H,W), "mask": (H,W), ...}`` -> same keys, augmented and resized.

    ``transform(sample, rng)``: ``rng`` is the sample's generator (:func:`sample_rng`); other keys
    pass through unchanged.
    """

    def __init__(self, policy: str = "paper", size: int = 224, p: float = 0.5, max_angle: float = 20.0):
        if policy not in POLICIES:
            raise ValueError(f"augment policy must be one of {POLICIES}, got {policy!r}")
        if size <= 0:
            raise ValueError(f"size must be a positive number of pixels, got {size}")
        self.policy, self.size, self.p, self.max_angle = policy, int(size), p, max_angle

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        image, mask = sample["image"], sample["mask"]
        if self.policy != "none":
            if rng is None:
                raise ValueError(f"policy {self.policy!r} needs the sample's rng (see sample_rng)")
            image, mask = apply_params(image, mask, draw_params(self.policy, rng, self.p, self.max_angle))
        image, mask = resize_pair(image, mask, self.size)
        return {**sample, "image": image, "mask": mask}

    def __repr__(self) -> str:
        return f"PairTransform(policy={self.policy!r}, size={self.size}, p={self.p}, max_angle={self.max_angle})"
