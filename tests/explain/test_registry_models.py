"""Grad-CAM on every registered classifier (tiny configs): target layers, shapes, both joint encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlswin.explain.gradcam import compute_cam
from mtlswin.explain.targets import cam_spec
from mtlswin.models import create_model, list_models, test_overrides

# CNN feature maps of a 32x32 input are 1x1 (stride 32): a CAM needs at least 2x2, so 64 there.
CNN_SIZE = {"resnet152": 64, "joint_learning": 64}


def classifier(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    overrides = test_overrides(name)
    if name in CNN_SIZE:
        overrides["img_size"] = CNN_SIZE[name]
    return create_model(name, **overrides)


CLASSIFIERS = [n for n in list_models() if "cls" in create_model(n, **test_overrides(n)).tasks]


def test_every_paper_classifier_is_covered() -> None:
    assert {"swin", "swin_tiny", "resnet152", "joint_learning", "joint_swin", "mtl_swin_unet"} <= set(CLASSIFIERS)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_cam_of_registered_classifier(name: str) -> None:
    model = classifier(name)
    size = model.config.img_size
    images = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(1))
    spec = cam_spec(model)
    shapes = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: shapes.append(out.shape)) for layer in spec.layers]
    with torch.no_grad():
        model.eval()(images)
    for hook in hooks:
        hook.remove()
    for shape in shapes:
        grid = spec.reshape(torch.zeros(shape)).shape if spec.reshape else shape
        assert len(grid) == 4 and grid[0] == 2 and grid[2] * grid[3] >= 4, (name, shape)
    maps = [compute_cam(model, images, target_class=k) for k in (0, 1)]
    for cams in maps:
        assert cams.shape == (2, size, size) and cams.dtype == np.float32
        assert np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1 + 1e-6
    # A GAP-linear head: the two classes' maps cannot both be all zero on random weights.
    assert max(float(m.max()) for m in maps) > 0.5, name


@pytest.mark.parametrize("name", [n for n in CLASSIFIERS if n.startswith("joint_swin")])
def test_joint_swin_maps_both_encoders(name: str) -> None:
    model = classifier(name)
    layers = cam_spec(model).layers
    assert any(layer is model.frozen_encoder.norm for layer in layers)
    assert any(any(layer is m for m in model.encoder.modules()) for layer in layers)
    assert not any(p.requires_grad for p in model.frozen_encoder.parameters())


def test_cam_spec_refuses_a_model_without_cam_target_layers() -> None:
    model = create_model("unet", **test_overrides("unet"))  # segmentation only: nothing to explain
    with pytest.raises(ValueError, match=r"UNet \(unet\) has no cam_target_layers\(\)"):
        cam_spec(model)
