"""The batched, on-device augmentation draws what the CPU path draws and moves pixels as Pillow does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlswin.data.device_augment import apply_batch, draw_batch, rotate_batch
from mtlswin.data.transforms import apply_params, draw_params, sample_rng

SEED, EPOCH, SIZE = 3, 2, 40
INDICES = np.arange(100, 164)


def _batch(n: int = len(INDICES)) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((n, 1, SIZE, SIZE), dtype=np.float32))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    masks = np.stack([((yy - 15 - i % 9) ** 2 + (xx - 22) ** 2 < 40 + 3 * i) for i in range(n)]).astype(np.uint8)
    return images, torch.from_numpy(masks)


def _cpu(policy: str, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [apply_params(images[b], masks[b], draw_params(policy, sample_rng(SEED, EPOCH, int(i))))
             for b, i in enumerate(INDICES)]  # fmt: skip
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


@pytest.mark.parametrize("policy", ["paper", "authors", "none"])
def test_draws_are_those_of_the_cpu_path(policy):
    draws = draw_batch(policy, SEED, EPOCH, INDICES)
    for b, i in enumerate(INDICES):
        p = draw_params(policy, sample_rng(SEED, EPOCH, int(i)))
        assert (draws.rot90_flip[b], draws.k[b], draws.flip_axis[b]) == (p.rot90_flip, p.k, p.flip_axis)
        assert draws.rotate[b] == (p.rotate and p.angle != 0) and draws.nearest_image[b] == p.nearest_image
        assert draws.angle[b] == p.angle


def test_paper_policy_equals_the_cpu_path():
    images, masks = _batch()
    before = images.clone(), masks.clone()
    draws = draw_batch("paper", SEED, EPOCH, INDICES)
    assert draws.rot90_flip.sum() >= 10 and draws.rotate.sum() >= 10  # both branches are exercised
    assert len({(k, a) for k, a, f in zip(draws.k, draws.flip_axis, draws.rot90_flip, strict=True) if f}) == 8
    out_images, out_masks = apply_batch(images, masks, draws)
    cpu_images, cpu_masks = _cpu("paper", images, masks)
    assert torch.equal(images, before[0]) and torch.equal(masks, before[1])  # inputs untouched
    assert (out_images - cpu_images).abs().max().item() <= 1e-6  # bilinear rotation as Pillow's
    assert torch.equal(out_masks, cpu_masks)
    assert not torch.equal(out_images, images)  # it did augment


def test_authors_policy_nearest_rotation_differs_from_pillow_only_at_ties():
    images, masks = _batch()
    draws = draw_batch("authors", SEED, EPOCH, INDICES)
    assert draws.rotate.sum() >= 5 and draws.nearest_image.all()
    out_images, out_masks = apply_batch(images, masks, draws)
    cpu_images, cpu_masks = _cpu("authors", images, masks)
    image_mismatch = (out_images != cpu_images).float().mean().item()
    mask_mismatch = (out_masks != cpu_masks).float().mean().item()
    print(f"authors policy: {image_mismatch:.2e} of image pixels, {mask_mismatch:.2e} of mask pixels differ")
    assert image_mismatch <= 1e-3 and mask_mismatch <= 1e-3
    unrotated = ~draws.rotate
    assert torch.equal(out_images[unrotated], cpu_images[unrotated])  # rot90/flip: exact


def test_rotation_is_counter_clockwise_with_zero_fill():
    x = torch.zeros(1, 9, 9)
    x[0, 4, 7] = 1.0  # right of the centre
    out = rotate_batch(x, [90.0], nearest=True)
    assert out[0, 1, 4] == 1.0 and out.sum() == 1.0  # counter-clockwise: now above the centre
    corners = rotate_batch(torch.ones(1, 9, 9), [45.0], nearest=False)
    assert corners[0, 0, 0] == 0 and corners[0, 4, 4] == 1.0  # the corners rotate out: zero fill


def test_bad_shapes_are_refused():
    images, masks = _batch(4)
    draws = draw_batch("paper", SEED, EPOCH, INDICES[:4])
    with pytest.raises(ValueError, match=r"\(B, 1, S, S\)"):
        apply_batch(images[:, 0], masks, draws)
    with pytest.raises(ValueError, match="3 draws for 4 images"):
        apply_batch(images, masks, draw_batch("paper", SEED, EPOCH, INDICES[:3]))
