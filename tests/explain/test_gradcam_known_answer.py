"""Grad-CAM on models whose answer is known: the positive logit reads one image quadrant only.

Each model mimics one family of the registry with the attribute names of docs/contracts.md and names
its Grad-CAM layers with ``cam_target_layers()``/``cam_reshape`` (NHWC Swin tokens under
``encoder.norm``; NCHW ``backbone.layer4``; two encoders ``encoder`` + frozen ``frozen_encoder``; an
smp-style ``net.encoder`` returning a list).
A feature extractor (8x8 average-pool patches) gives channel 0 = patch value inside the quadrant,
channel 1 = patch value outside it, channel 2 = the patch value everywhere; the positive logit is a
fixed linear read-out of the pooled channel 0, so it depends only on the quadrant's pixels, while the
image has content everywhere. The quadrant is the top-right one, so a transposed reshape would
put the map bottom-left and fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mtlswin.explain.gradcam import compute_cam
from mtlswin.explain.targets import cam_spec
from mtlswin.models.encoder import nhwc_to_nchw

SIZE, PATCH = 64, 8
TOP_RIGHT = (slice(0, SIZE // 2), slice(SIZE // 2, SIZE))
BOTTOM_LEFT = (slice(SIZE // 2, SIZE), slice(0, SIZE // 2))


def region_mask(region: tuple[slice, slice], size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[region] = True
    return mask


def energy_share(cams: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-image share of the map's sum inside ``mask``; cams (B, H, W)."""
    return (cams * mask).sum(axis=(1, 2)) / cams.sum(axis=(1, 2))


class QuadrantFeatures(nn.Module):
    """(B, 1, H, W) -> (B, 3, h, w) [value in region, value outside, value] (NCHW) or the same NHWC."""

    def __init__(self, region: tuple[slice, slice], nhwc: bool) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, 1, PATCH, stride=PATCH, bias=False)  # a learnable-looking patch mean
        nn.init.constant_(self.embed.weight, 1.0 / PATCH**2)
        gate = torch.from_numpy(region_mask(region)[PATCH // 2 :: PATCH, PATCH // 2 :: PATCH]).float()
        self.register_buffer("gate", gate)
        self.nhwc = nhwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = self.embed(x)  # B, 1, h, w
        feats = torch.cat([value * self.gate, value * (1 - self.gate), value], dim=1)  # B, 3, h, w
        return feats.permute(0, 2, 3, 1) if self.nhwc else feats  # B, h, w, C for Swin


def readout(n_in: int, positive_channels: list[int]) -> nn.Linear:
    """logits = [sum of channels 1 (outside), 2 * sum of the ``positive_channels``] of the pooled feature."""
    head = nn.Linear(n_in, 2, bias=False)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 1] = 1.0
        head.weight[1, positive_channels] = 2.0
    return head


class SwinEncoderLike(nn.Module):
    def __init__(self, region: tuple[slice, slice]) -> None:
        super().__init__()
        self.stages = nn.ModuleList([QuadrantFeatures(region, nhwc=True)])
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages[0](x))  # B, h, w, C


class SwinLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = SwinEncoderLike(TOP_RIGHT)
        self.head = readout(3, [0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.encoder(x)
        return {"logits": self.head(tokens.mean(dim=(1, 2))), "rec": x}

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.encoder.norm]

    cam_reshape = staticmethod(nhwc_to_nchw)


class JointSwinLike(nn.Module):
    """Trainable encoder reads the top-right quadrant, the frozen one the bottom-left."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = SwinEncoderLike(TOP_RIGHT)
        self.frozen_encoder = SwinEncoderLike(BOTTOM_LEFT).requires_grad_(False)
        self.head = readout(6, [0, 3])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = torch.cat([self.encoder(x), self.frozen_encoder(x)], dim=-1)  # B, h, w, 2C
        return {"logits": self.head(tokens.mean(dim=(1, 2)))}

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.encoder.norm, self.frozen_encoder.norm]

    cam_reshape = staticmethod(nhwc_to_nchw)


class ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.layer4 = QuadrantFeatures(TOP_RIGHT, nhwc=False)
        self.head = readout(3, [0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.backbone.layer4(x).mean(dim=(2, 3)))}

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.backbone.layer4]

    cam_reshape = None


class SmpEncoderLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Identity()
        self.blocks = nn.Sequential(QuadrantFeatures(TOP_RIGHT, nhwc=False))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.stem(x)
        return [x, stem, self.blocks(stem)]


class SmpLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Module()
        self.net.encoder = SmpEncoderLike()
        self.head = readout(3, [0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        deepest = self.net.encoder(x)[-1]
        return {"logits": self.head(deepest.mean(dim=(2, 3))), "seg": torch.zeros_like(x).repeat(1, 2, 1, 1)}

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.net.encoder.blocks]

    cam_reshape = None


FAMILIES = {"swin": SwinLike, "resnet": ResNetLike, "smp": SmpLike}


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.2


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigengradcam"])
def test_cam_energy_lies_in_the_read_out_quadrant(family: str, method: str, images: torch.Tensor) -> None:
    model = FAMILIES[family]()
    assert cam_spec(model).reshape is (nhwc_to_nchw if family == "swin" else None)
    cams = compute_cam(model, images, method=method)
    assert cams.shape == (3, SIZE, SIZE) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() <= 1.0 + 1e-6
    share = energy_share(cams, region_mask(TOP_RIGHT))
    assert (share >= 0.8).all(), share


def test_target_class_zero_points_outside_the_quadrant(images: torch.Tensor) -> None:
    cams = compute_cam(SwinLike(), images, target_class=0)
    share_outside = energy_share(cams, ~region_mask(TOP_RIGHT))
    assert (share_outside >= 0.8).all(), share_outside


def test_joint_model_both_encoders_contribute(images: torch.Tensor) -> None:
    model = JointSwinLike()
    spec = cam_spec(model)
    assert spec.layers == [model.encoder.norm, model.frozen_encoder.norm]
    cams = compute_cam(model, images)
    top_right = energy_share(cams, region_mask(TOP_RIGHT))
    bottom_left = energy_share(cams, region_mask(BOTTOM_LEFT))
    assert (top_right + bottom_left >= 0.8).all(), (top_right, bottom_left)
    assert (top_right >= 0.3).all() and (bottom_left >= 0.3).all(), (top_right, bottom_left)
    assert all(not p.requires_grad for p in model.frozen_encoder.parameters())  # still frozen afterwards


def test_model_mode_is_restored_and_aug_smooth_averages_the_flip(images: torch.Tensor) -> None:
    # aug_smooth averages the maps of flipped inputs, flipped back: the model reads the top-right
    # quadrant of the flipped image, i.e. the top-left of the original, so half the map moves there.
    model = SwinLike().train()
    cams = compute_cam(model, images[:1], aug_smooth=True)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    top_right = energy_share(cams, region_mask(TOP_RIGHT))[0]
    top_left = energy_share(cams, region_mask((slice(0, SIZE // 2), slice(0, SIZE // 2))))[0]
    assert top_right + top_left >= 0.8 and min(top_right, top_left) >= 0.3, (top_right, top_left)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"method": "scorecam"}, "unknown CAM method"), ({"target_class": 2}, "target_class 2")],
)
def test_bad_arguments_are_rejected(kwargs: dict, match: str, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=match):
        compute_cam(SwinLike(), images, **kwargs)


def test_bad_image_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        compute_cam(SwinLike(), torch.rand(2, 3, SIZE, SIZE))
