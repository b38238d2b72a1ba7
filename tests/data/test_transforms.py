"""Augmentation: one draw moves image and mask alike; branch frequencies match the configured p."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlswin.data.transforms import AugmentParams, PairTransform, apply_params, draw_params, resize_pair, sample_rng


def _shape(h=40, w=40):
    """An asymmetric 'L' (so every rotation/flip is distinguishable) as image and mask."""
    mask = torch.zeros(h, w, dtype=torch.long)
    mask[8:30, 10:16] = 1
    mask[24:30, 16:30] = 1
    return mask[None].float(), mask


def _iou(a, b):
    return (a & b).sum().item() / (a | b).sum().item()


CASES = [AugmentParams(True, k, axis) for k in range(4) for axis in (0, 1)]
CASES += [AugmentParams(rotate=True, angle=a) for a in (-20.0, -7.5, 13.0, 20.0)]
CASES += [AugmentParams(True, 3, 1, True, -11.0), AugmentParams(rotate=True, angle=-17.0, nearest_image=True)]


@pytest.mark.parametrize("params", CASES, ids=str)
def test_mask_stays_registered(params):
    image, mask = _shape()
    out_img, out_mask = apply_params(image, mask, params)
    assert out_mask.dtype == torch.long and set(out_mask.unique().tolist()) <= {0, 1}
    assert not torch.equal(out_mask, mask)  # the shape did move
    if params.rotate and not params.nearest_image:
        assert _iou(out_img[0] > 0.5, out_mask.bool()) > 0.9  # bilinear image edge vs nearest mask
    else:
        assert torch.equal(out_img[0] > 0.5, out_mask.bool())
    big_img, big_mask = resize_pair(out_img, out_mask, 64)
    assert big_img.shape == (1, 64, 64) and big_mask.shape == (64, 64)
    assert _iou(big_img[0] > 0.5, big_mask.bool()) > 0.85


def test_rot90_flip_matches_numpy():
    image, mask = _shape()
    out, _ = apply_params(image, mask, AugmentParams(True, 1, 0))
    np.testing.assert_array_equal(out[0].numpy(), np.flip(np.rot90(image[0].numpy(), 1), 0))
    out, _ = apply_params(image, mask, AugmentParams(True, 2, 1))
    np.testing.assert_array_equal(out[0].numpy(), np.flip(np.rot90(image[0].numpy(), 2), 1))


def _within_3_sigma(hits, n, p):
    return abs(hits / n - p) <= 3 * np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_paper_branch_frequencies(p):
    n = 10_000
    draws = [draw_params("paper", sample_rng(0, 0, i), p=p) for i in range(n)]
    a = np.array([d.rot90_flip for d in draws])
    b = np.array([d.rotate for d in draws])
    assert _within_3_sigma(a.sum(), n, p) and _within_3_sigma(b.sum(), n, p)
    assert _within_3_sigma((a & b).sum(), n, p * p)  # independent branches
    ks = np.array([d.k for d in draws])[a]
    for k in range(4):
        assert _within_3_sigma((ks == k).sum(), len(ks), 0.25)
    axes = np.array([d.flip_axis for d in draws])[a]
    assert _within_3_sigma((axes == 0).sum(), len(axes), 0.5)
    angles = np.array([d.angle for d in draws])
    assert angles.min() >= -20 and angles.max() <= 20 and _within_3_sigma((angles > 0).sum(), n, 0.5)


def test_authors_branch_frequencies():
    n = 10_000
    draws = [draw_params("authors", sample_rng(7, 3, i)) for i in range(n)]
    a = np.array([d.rot90_flip for d in draws])
    b = np.array([d.rotate for d in draws])
    assert _within_3_sigma(a.sum(), n, 0.5) and _within_3_sigma(b.sum(), n, 0.25)
    assert not (a & b).any()
    angles = np.array([d.angle for d in draws])
    assert set(np.unique(angles)) == set(range(-20, 20)) and all(d.nearest_image for d in draws)


def test_draws_are_pure_functions_of_seed_epoch_index():
    assert draw_params("paper", sample_rng(1, 2, 3)) == draw_params("paper", sample_rng(1, 2, 3))
    assert len({draw_params("paper", sample_rng(1, e, 3)) for e in range(20)}) > 10
    image, mask = _shape()
    t = PairTransform("paper", 32)
    x = t({"image": image, "mask": mask, "other": 5}, sample_rng(0, 1, 2))
    y = t({"image": image, "mask": mask, "other": 5}, sample_rng(0, 1, 2))
    assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"]) and x["other"] == 5
    assert x["image"].shape == (1, 32, 32)


def test_none_only_resizes_and_bad_names():
    image, mask = _shape()
    out = PairTransform("none", 40)({"image": image, "mask": mask})
    assert torch.equal(out["image"], image) and torch.equal(out["mask"], mask)
    with pytest.raises(ValueError, match="augment policy must be one of"):
        PairTransform("flip")
    with pytest.raises(ValueError, match="needs the sample's rng"):
        PairTransform("paper", 40)({"image": image, "mask": mask})
