"""One interface for every attribution method: shapes, range, dtype, exact input attributions, state restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mtlswin.explain.attribution import ALL_METHODS, INPUT_METHODS, METHODS, attribute
from mtlswin.explain.gradcam import CAM_METHODS
from mtlswin.models import create_model, test_overrides

SIZE = 32


def tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **test_overrides(name))


@pytest.fixture(scope="module")
def swin() -> nn.Module:
    return tiny("swin")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


class PixelReader(nn.Module):
    """``logits = [0, sum(w * x)]``, ``w >= 0``: IG and input x gradient are both exactly ``w * x``."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        score = (x * self.weight).sum(dim=(1, 2, 3))
        return {"logits": torch.stack([torch.zeros_like(score), score], dim=1)}


def test_method_lists_follow_the_docs_table() -> None:
    assert METHODS == (
        "gradcam",
        "hirescam",
        "gradcam++",
        "layercam",
        "eigencam",
        "integrated_gradients",
        "input_x_gradient",
    )
    assert set(ALL_METHODS) == set(METHODS) | {"eigengradcam"}
    assert set(ALL_METHODS) - set(INPUT_METHODS) == set(CAM_METHODS)


@pytest.mark.parametrize("stage", [None, 0])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_gives_maps_in_unit_range(method: str, stage: int | None, swin, images) -> None:
    both = [attribute(swin, images, method=method, stage=stage, target_class=k) for k in (0, 1)]
    for maps in both:
        assert maps.shape == (2, SIZE, SIZE) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    # on random weights one class's map may be all zero (no positive evidence), not both classes'
    assert max(float(maps.max()) for maps in both) > 0.5


@pytest.mark.parametrize("method", INPUT_METHODS)
def test_input_methods_on_a_linear_model_are_weight_times_pixel(method: str, images) -> None:
    weight = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    maps = attribute(PixelReader(weight), images, method=method)
    expected = (weight * images)[:, 0].numpy()
    expected /= expected.reshape(2, -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    assert (maps.reshape(2, -1).max(axis=1) == 1.0).all()


@pytest.mark.parametrize("method", INPUT_METHODS)
def test_input_methods_keep_the_positive_part_and_a_zero_map_stays_zero(method: str, images) -> None:
    weight = -torch.ones(1, 1, SIZE, SIZE)  # every pixel is evidence against the class
    maps = attribute(PixelReader(weight), images, method=method)
    assert maps.dtype == np.float32 and (maps == 0).all()


@pytest.mark.parametrize("method", ["integrated_gradients", "input_x_gradient", "hirescam", "eigencam"])
def test_model_mode_requires_grad_and_gradients_are_restored(method: str, images) -> None:
    model = tiny("joint_swin").train()
    flags = [p.requires_grad for p in model.parameters()]
    attribute(model, images, method=method)
    assert model.training and not model.frozen_encoder.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_input_methods_ignore_the_stage(swin, images) -> None:
    a = attribute(swin, images, method="input_x_gradient", stage=0)
    b = attribute(swin, images, method="input_x_gradient")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "scorecam"}, r"unknown attribution method 'scorecam'; choose one of gradcam, hirescam"),
        ({"method": "integrated_gradients", "target_class": 2}, "target_class 2"),
        ({"method": "gradcam", "target_class": 2}, "target_class 2"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, match: str, swin, images) -> None:
    with pytest.raises(ValueError, match=match):
        attribute(swin, images, **kwargs)


@pytest.mark.parametrize("method", ["gradcam", "input_x_gradient"])
def test_bad_image_shape_is_rejected(method: str, swin) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        attribute(swin, torch.rand(2, 3, SIZE, SIZE), method=method)
