"""Grad-CAM at an earlier Swin stage: finer maps, the same layer for every Swin family, refused elsewhere."""

from __future__ import annotations

import pytest
import torch

from mtlswin.explain.gradcam import compute_cam
from mtlswin.explain.targets import cam_spec
from mtlswin.models import create_model, test_overrides


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **test_overrides(name)).eval()


@pytest.mark.parametrize("name", ["swin", "mtl_swin_unet", "joint_swin"])
def test_stage_option_targets_that_stage_of_every_encoder(name):
    model = _tiny(name)
    spec = cam_spec(model, stage=0)
    encoders = [model.encoder] + ([model.frozen_encoder] if hasattr(model, "frozen_encoder") else [])
    assert spec.layers == [e.stages[0].blocks for e in encoders]
    assert cam_spec(model).layers == [e.norm for e in encoders]
    size = model.config.img_size
    assert model.encoder.cam_resolution(0) == size // model.config.patch_size
    assert model.encoder.cam_resolution() == model.encoder.resolutions[-1] < model.encoder.cam_resolution(0)
    cams = compute_cam(model, torch.rand(2, 1, size, size), spec=spec)
    assert cams.shape == (2, size, size) and (cams >= 0).all() and (cams <= 1).all()


def test_stage_out_of_range_names_the_valid_stages():
    with pytest.raises(ValueError, match="stages 0-"):
        cam_spec(_tiny("swin"), stage=5)


def test_stage_option_is_refused_for_cnn_models():
    with pytest.raises(ValueError, match="Swin models"):
        cam_spec(_tiny("resnet152"), stage=0)
