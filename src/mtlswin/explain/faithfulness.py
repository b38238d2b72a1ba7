"""Faithfulness of attribution maps: ROAD (Rong et al. 2022, "A consistent and efficient evaluation strategy").

ROAD removes pixels in the order a map ranks them and fills them by noisy linear imputation from their
neighbours (pytorch-grad-cam's ``NoisyLinearImputer``: each removed pixel is the weighted mean of its eight
neighbours, solved as one sparse system, plus N(0, 0.01) noise), so the perturbed image stays close to the data.
For each percentile ``p`` of (20, 40, 60, 80) it measures the change of the positive class's softmax probability

    MoRF(p) = prob(x with the most relevant pixels removed) - prob(x)
    LeRF(p) = prob(x with the least relevant pixels removed) - prob(x)
    ROAD    = (mean_p LeRF(p) - mean_p MoRF(p)) / 2                  (pytorch-grad-cam's ``ROADCombined``)

per image; higher is more faithful (removing what the map calls important costs more than removing the rest).
Maps are replaced by their ranks first (:func:`rank_maps`, ties broken at random with a fixed seed), so every
method removes exactly the asked share of pixels, however many zeros its map has.

Cost: one :func:`road_scores` call on 8 images of 128x128 with a tiny Swin takes about 5.5 s on one CPU core
(``OMP_NUM_THREADS=1``): about 85 % in the imputer's 64 sparse solves (8 images x 4 percentiles x 2 orders), the
rest in the model's 16 forward passes. The solves run on the CPU even for a model on a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn

from mtlswin.explain.gradcam import LogitsOnly, _check_images

__all__ = ["ROAD_PERCENTILES", "rank_maps", "road_scores"]

ROAD_PERCENTILES = (20, 40, 60, 80)


def rank_maps(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each map ``(N, H, W)`` replaced by its pixel ranks scaled to [0, 1] (float32): the lowest pixel 0, the
    highest 1, all values distinct; equal values are ordered at random (``numpy`` generator seeded with ``seed``)."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got {maps.shape}")
    rng = np.random.default_rng(seed)
    n = maps.shape[1] * maps.shape[2]
    ranked = np.empty((len(maps), n), dtype=np.float64)
    for i, flat in enumerate(maps.reshape(len(maps), n)):
        order = np.lexsort((rng.random(n), flat))  # by value, ties by a random key
        ranked[i, order] = np.arange(n)
    return (ranked / max(n - 1, 1)).reshape(maps.shape).astype(np.float32)


def road_scores(
    model: nn.Module,
    images: torch.Tensor,
    maps: np.ndarray,
    target_class: int = 1,
    percentiles: Sequence[int] = ROAD_PERCENTILES,
    seed: int = 0,
) -> np.ndarray:
    """ROAD combined score of each map ``(N, H, W)`` for ``images (N, 1, H, W)`` -> ``np.ndarray (N,)`` float64.

    The ``target_class`` softmax probability of ``model`` (eval mode, its mode restored afterwards); maps are
    rank-transformed first. The imputer's noise comes from torch's global generator, seeded with ``seed``
    inside a fork of it, so scores repeat and the caller's random state is left as it was.
    """
    _check_images(images)
    maps = np.asarray(maps)
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"maps must be (N, H, W) = {(images.shape[0], *images.shape[2:])}, got {maps.shape}")
    ranks = rank_maps(maps, seed=seed)
    was_training = model.training
    wrapped = LogitsOnly(model).eval()
    device = next(model.parameters()).device
    x = images.detach().to(device=device, dtype=torch.float32)
    targets = [ClassifierOutputSoftmaxTarget(target_class) for _ in range(len(x))]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            scores = ROADCombined(percentiles=list(percentiles))(x, ranks, targets, wrapped)
    finally:
        model.train(was_training)
    return np.asarray(scores, dtype=np.float64).reshape(len(x))
