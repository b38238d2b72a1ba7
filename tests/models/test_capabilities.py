"""Every registered model declares exactly the capabilities its built model (tiny config) has."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from mtlswin.models import create_model, list_models, test_overrides
from mtlswin.models.encoder import SwinEncoder
from mtlswin.models.registry import Capabilities, get_entry

NAMES = list_models()


def _tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **test_overrides(name)).eval()


def _image(model: nn.Module) -> torch.Tensor:
    size = getattr(model.config, "img_size", 32)
    return torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(1))


def _declares(name: str, capability: str) -> bool:
    return getattr(get_entry(name).capabilities, capability)


@torch.no_grad()
def _one_linear_head_on_pooled_features(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``logits == head(pooled)`` with ``head`` one ``nn.Linear`` and ``pooled`` as Capabilities defines it."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        return False
    if callable(getattr(model, "pooled_features", None)):
        pooled = model.pooled_features(x)
    elif isinstance(getattr(model, "encoder", None), SwinEncoder):
        pooled = model.encoder(x).bottleneck.mean(dim=(1, 2))
    else:
        return False
    if pooled.shape != (x.shape[0], head.in_features):
        return False
    return torch.allclose(head(pooled), model(x)["logits"], rtol=0, atol=1e-6)


@torch.no_grad()
def _head_pools_its_one_cam_layer(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether the model has one Grad-CAM layer whose (B, h, w, C) tokens, averaged, give the logits through ``head``."""
    if not callable(getattr(model, "cam_target_layers", None)) or getattr(model, "cam_reshape", None) is None:
        return False
    layers, head = model.cam_target_layers(), getattr(model, "head", None)
    if len(layers) != 1 or not isinstance(head, nn.Linear):
        return False
    seen: list[torch.Tensor] = []
    handle = layers[0].register_forward_hook(lambda module, args, out: seen.append(out))
    logits = model(x)["logits"]
    handle.remove()
    tokens = seen[-1]  # B, h, w, C
    if tokens.ndim != 4 or tokens.shape[-1] != head.in_features:
        return False
    return torch.allclose(head(tokens.mean(dim=(1, 2))), logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_linear_head_is_declared_exactly_by_the_models_with_one_linear_head_on_pooled_features(name):
    model = _tiny(name)
    assert _one_linear_head_on_pooled_features(model, _image(model)) == _declares(name, "linear_head")


@pytest.mark.parametrize("name", NAMES)
def test_cam_align_is_declared_exactly_by_the_models_whose_head_pools_their_one_cam_layer(name):
    model = _tiny(name)
    assert _head_pools_its_one_cam_layer(model, _image(model)) == _declares(name, "cam_align")


@pytest.mark.parametrize("name", NAMES)
def test_frozen_encoder_is_declared_exactly_by_the_models_with_a_frozen_part_from_that_field(name):
    model = _tiny(name)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert bool(frozen) == _declares(name, "frozen_encoder")
    if _declares(name, "frozen_encoder"):
        assert "frozen_encoder" in {f.name for f in dataclasses.fields(model.config)}


@pytest.mark.parametrize("name", [n for n in NAMES if _declares(n, "simmim_pretrain")])
def test_simmim_pretrain_models_have_a_swin_encoder_of_their_config_sizes(name):
    model = _tiny(name)
    assert isinstance(model.encoder, SwinEncoder)
    sizes = model.config.encoder_kwargs()
    assert tuple(model.encoder.depths) == tuple(sizes["depths"])
    assert model.encoder.patch_embed.proj.out_channels == sizes["embed_dim"]


def test_capabilities_are_frozen_and_default_to_nothing():
    caps = Capabilities()
    assert not any(dataclasses.astuple(caps))
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.linear_head = True  # type: ignore[misc]
