"""Parameter-randomisation sanity check: blocks, redraws, similarity, and the verdict on maps of known dependence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlswin.explain.sanity import (
    SANITY_THRESHOLD,
    full_randomisation_similarity,
    map_similarity,
    randomisation_blocks,
    randomise,
    sanity_table,
    sanity_verdict,
)
from mtlswin.models import create_model, test_overrides

SIZE = 32


def tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **test_overrides(name))


def jittered(model: nn.Module) -> nn.Module:
    """Every tensor of more than one element gets a nonzero sd (a trained model's LayerNorm is not all ones)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


class ImageTracker(nn.Module):
    """The CAM layer is parameter-free (``[x, blur(x)]``): Eigen-CAM there is the image's principal component,
    whatever the weights of the conv + head behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _Stem()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(F.relu(self.conv(self.stem(x))).mean(dim=(2, 3)))}

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.stem]

    cam_reshape = None


class _Stem(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, F.avg_pool2d(x, 3, stride=1, padding=1)], dim=1)


class RegionReader(nn.Module):
    """``logit_1 = sum(w * x)`` with ``w`` 1 on a box, 0 elsewhere: a redrawn ``w`` reads other pixels."""

    def __init__(self) -> None:
        super().__init__()
        weight = torch.zeros(1, 1, SIZE, SIZE)
        weight[..., 4:14, 18:28] = 1.0
        self.read = nn.Conv2d(1, 1, SIZE, bias=False)
        with torch.no_grad():
            self.read.weight.copy_(weight)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        score = self.read(x).flatten(1)  # B, 1
        return {"logits": torch.cat([-score, score], dim=1)}


def test_blocks_of_a_swin_classifier_are_top_first(images) -> None:
    model = tiny("swin")
    blocks = randomisation_blocks(model, images)
    assert [name for name, _ in blocks] == [
        "head",
        "encoder.norm",
        "encoder.stages.1",
        "encoder.stages.0",
        "encoder.patch_embed",
    ]
    assert sorted(n for _, names in blocks for n in names) == sorted(n for n, _ in model.named_parameters())


def test_decoders_of_an_mtl_model_are_not_blocks(images) -> None:
    model = tiny("mtl_swin_unet")
    names = [name for name, _ in randomisation_blocks(model, images)]
    assert names == ["head", "encoder.norm", "encoder.stages.2", "encoder.stages.1", "encoder.stages.0",
                     "encoder.patch_embed"]  # fmt: skip
    assert any(n.startswith("decoders.") for n, _ in model.named_parameters())


def test_frozen_encoder_is_a_block_and_the_model_is_left_as_it_was(images) -> None:
    model = tiny("joint_swin").train()
    flags = [p.requires_grad for p in model.parameters()]
    names = [name for name, _ in randomisation_blocks(model, images)]
    # 9 fine blocks (2 encoders x 4 + head) > 8: stages are grouped per encoder; the frozen encoder runs second
    assert names == ["head", "frozen_encoder.norm", "frozen_encoder.stages", "frozen_encoder.patch_embed",
                     "encoder.norm", "encoder.stages", "encoder.patch_embed"]  # fmt: skip
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not any(p.requires_grad for p in model.frozen_encoder.parameters())
    assert model.training and all(p.grad is None for p in model.parameters())


def test_a_segmenter_run_without_gradient_is_not_a_block(images) -> None:
    names = [name for name, _ in randomisation_blocks(tiny("seg_gated_swin"), images)]
    assert names and not any(name.startswith("segmenter") for name in names)


def test_more_than_eight_blocks_are_grouped_by_container(images) -> None:
    model = nn.Sequential()
    model.body = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(9)])
    model.pool = nn.AdaptiveAvgPool2d(1)
    model.flat = nn.Flatten()
    model.head = nn.Linear(1, 2)
    assert [name for name, _ in randomisation_blocks(model, images)] == ["head", "body"]
    model.body = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)])
    assert [name for name, _ in randomisation_blocks(model, images)] == ["head", "body.2", "body.1", "body.0"]


def test_randomise_redraws_exactly_the_chosen_blocks_and_leaves_the_original(images) -> None:
    model = jittered(tiny("swin"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    chosen = ["head", "encoder.stages.1"]
    copy = randomise(model, chosen, seed=0)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name  # the original is bit-identical
    changed = {n for n, p in copy.named_parameters() if not torch.equal(p, before[n])}
    expected = {n for n in before if n.startswith(("head.", "encoder.stages.1."))}
    assert changed == expected and len(expected) > 10
    for name in expected:  # redrawn with the tensor's own mean and sd
        new, old = dict(copy.named_parameters())[name].detach(), before[name]
        if new.numel() > 100:
            assert abs(float(new.std() / old.std()) - 1) < 0.3, name


def test_randomise_keeps_single_values_and_constant_tensors() -> None:
    model = nn.Sequential(nn.Linear(3, 1), nn.LayerNorm(4))  # bias of one element; LayerNorm weight all 1
    copy = randomise(model, ["0", "1"], seed=0)
    assert torch.equal(copy[0].bias, model[0].bias) and torch.equal(copy[1].weight, model[1].weight)
    assert not torch.equal(copy[0].weight, model[0].weight)


def test_a_tensor_draw_does_not_depend_on_the_other_blocks(images) -> None:
    model = jittered(tiny("swin"))
    alone = randomise(model, ["head"], seed=1)
    both = randomise(model, ["head", "encoder.norm"], seed=1)
    assert torch.equal(alone.head.weight, both.head.weight)
    assert not torch.equal(randomise(model, ["head"], seed=2).head.weight, alone.head.weight)


def test_randomise_rejects_an_unknown_block() -> None:
    with pytest.raises(ValueError, match="block 'tail' holds no parameter"):
        randomise(nn.Linear(2, 2), ["tail"])


def test_map_similarity_numbers() -> None:
    grid = np.linspace(0, 1, SIZE * SIZE).reshape(1, SIZE, SIZE)
    same = map_similarity(grid, grid)
    assert same["spearman"][0] == pytest.approx(1.0) and same["ssim"][0] == pytest.approx(1.0, abs=1e-4)
    flipped = map_similarity(grid, 1 - grid)
    assert flipped["spearman"][0] == pytest.approx(-1.0) and flipped["ssim"][0] < 0
    zeros, ones, ramp = np.zeros((16, 16)), np.ones((16, 16)), np.arange(256.0).reshape(16, 16) / 255
    constant = np.stack([zeros, zeros, ones])
    np.testing.assert_array_equal(map_similarity(constant, constant.copy())["spearman"], 1.0)
    np.testing.assert_array_equal(map_similarity(constant, np.stack([zeros, ramp, zeros]))["spearman"], [1, 0, 0])


def test_a_map_blind_to_the_weights_fails(images) -> None:
    model = ImageTracker()
    table = sanity_table(model, images, "eigencam", seed=0)
    assert list(table.columns) == ["variant", "step", "block", "spearman", "ssim"]
    assert table["block"].tolist() == ["head", "conv"] * 2 and table["step"].tolist() == [1, 2, 1, 2]
    np.testing.assert_allclose(table[["spearman", "ssim"]].to_numpy(), 1.0, atol=1e-5)  # the very same maps
    verdict = sanity_verdict(table)
    assert verdict["spearman_full"] >= SANITY_THRESHOLD and not verdict["passes"]


@pytest.mark.parametrize("method", ["input_x_gradient", "integrated_gradients"])
def test_a_map_that_reads_the_weights_passes(method: str, images) -> None:
    model = RegionReader()
    table = sanity_table(model, images, method, seed=0)
    assert table["block"].tolist() == ["read", "read"]
    verdict = sanity_verdict(table)
    assert verdict["passes"], verdict
    assert verdict["spearman_full"] < 0.2 and verdict["ssim_full"] < 0.2, verdict
    full = full_randomisation_similarity(model, images, method, seed=0)
    assert full["spearman_full"] == pytest.approx(verdict["spearman_full"]) and full["passes"]
    assert full["n_blocks"] == 1 and full["spearman"].shape == (2,)


def test_cascade_end_equals_full_randomisation_on_a_swin(images) -> None:
    model = tiny("swin")
    table = sanity_table(model, images, "gradcam", stage=0, seed=0)
    assert (table.groupby("variant").size() == 5).all()
    full = full_randomisation_similarity(model, images, "gradcam", stage=0, seed=0)
    verdict = sanity_verdict(table)
    assert full["spearman_full"] == pytest.approx(verdict["spearman_full"])
    assert full["ssim_full"] == pytest.approx(verdict["ssim_full"])
    assert all(p.grad is None for p in model.parameters())
