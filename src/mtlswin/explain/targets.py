"""Which layer Grad-CAM looks at, per model family, and how its output becomes a ``(B, C, h, w)`` map.

pytorch-grad-cam needs target layers whose output is a channels-first feature map. A model may
say so itself (``model.cam_target_layers()`` and ``model.cam_reshape``, see docs/contracts.md);
otherwise :func:`cam_spec` falls back to this table, keyed on the attributes of each family. Both
encoders of Joint-SwinTransformer are targets (the input is given ``requires_grad`` so the frozen
encoder's activations receive gradients although its parameters do not):

=====================  ========================================  ===========  =====================
family                 target layer(s)                           layout       why
=====================  ========================================  ===========  =====================
Swin-based (``swin``,  ``model.encoder.norm`` (or the last        NHWC tokens  the classifier is GAP +
``swin_tiny``,         stage if there is no norm)                             linear on these tokens,
``swin_unet``,                                                                so Grad-CAM there is each
``mtl_swin_unet``)                                                            token's share of the logit
Joint-SwinTransformer  ``model.encoder.norm`` and                 NHWC tokens  the head pools the concat
(``joint_swin*``)      ``model.frozen_encoder.norm``                          of both: one map each,
                                                                              averaged (both contribute)
ResNet152              ``model.backbone.layer4``                  NCHW         last conv stage, the
                                                                              classic Grad-CAM choice
Joint-Learning /       the module producing the deepest feature   NCHW         smp's classification head
U-Net (smp)            of ``model.net.encoder`` (found by                     pools that feature
                       running one input, see below)
=====================  ========================================  ===========  =====================

timm's Swin stages keep tokens NHWC ``(B, h, w, C)``; :func:`tokens_to_nchw` turns them (and the
flat ``(B, L, C)`` layout of older code, with a square ``h = w = sqrt(L)``) into ``(B, C, h, w)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["CamSpec", "cam_spec", "deepest_feature_module", "tokens_to_nchw"]


@dataclass
class CamSpec:
    """Target layers of a model and the transform turning their output into ``(B, C, h, w)``."""

    layers: list[nn.Module]
    reshape: Callable[[torch.Tensor], torch.Tensor] | None  # None: the output is already NCHW
    family: str  # "model" (the model's own choice), "swin", "joint_swin", "resnet", "smp"


def tokens_to_nchw(tokens: torch.Tensor) -> torch.Tensor:
    """Swin tokens ``(B, h, w, C)`` (timm, NHWC) or ``(B, L, C)`` with square ``L`` -> ``(B, C, h, w)``."""
    if tokens.ndim == 4:
        return tokens.permute(0, 3, 1, 2)
    if tokens.ndim == 3:
        side = math.isqrt(tokens.shape[1])
        if side * side != tokens.shape[1]:
            raise ValueError(f"cannot reshape {tokens.shape[1]} tokens to a square grid; pass NHWC tokens (B, h, w, C)")
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)
    raise ValueError(f"tokens must be (B, h, w, C) or (B, L, C), got shape {tuple(tokens.shape)}")


def _swin_target(encoder: nn.Module) -> nn.Module:
    norm = getattr(encoder, "norm", None)
    if isinstance(norm, nn.Module):
        return norm
    stages = getattr(encoder, "stages", None)
    if stages is None or len(stages) == 0:
        raise ValueError(f"{type(encoder).__name__} has neither `norm` nor `stages`; cannot pick a Grad-CAM layer")
    return stages[-1]


def deepest_feature_module(model: nn.Module, encoder: nn.Module, example: torch.Tensor) -> nn.Module:
    """The outermost sub-module of ``encoder`` whose output *is* the encoder's deepest feature.

    smp encoders return a list of features and have no single "last layer" attribute shared by
    every encoder type, so we run ``model(example)`` once and match the encoder's last feature by
    tensor identity (written by hand: neither smp nor pytorch-grad-cam offers this look-up).
    """
    produced: list[tuple[nn.Module, object]] = []

    def record(mod: nn.Module, _inp: object, out: object) -> None:
        produced.append((mod, out))

    hooks = [m.register_forward_hook(record) for m in encoder.modules()]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    features = next((out for mod, out in reversed(produced) if mod is encoder), None)
    if features is None:
        raise ValueError(
            f"{type(encoder).__name__} was not called by the model's forward; give the model cam_target_layers()"
        )
    deepest = features[-1] if isinstance(features, (list, tuple)) else features
    matches = [mod for mod, out in produced if out is deepest and mod is not encoder]
    if not matches:
        raise ValueError(
            f"no sub-module of {type(encoder).__name__} outputs its deepest feature; give the model cam_target_layers()"
        )
    return matches[-1]  # hooks of nested modules fire inner first: the last match is the outermost


def _smp_example(model: nn.Module) -> torch.Tensor:
    size = int(getattr(getattr(model, "config", None), "img_size", 64) or 64)
    param = next(model.parameters())
    return torch.zeros(1, 1, size, size, device=param.device, dtype=param.dtype)


def cam_spec(model: nn.Module, stage: int | None = None) -> CamSpec:
    """Target layers and reshape for ``model`` (its own ``cam_target_layers()`` first, else the table above).

    ``stage``: a Swin model's encoder stage instead of its bottleneck (a finer map); other models refuse it.
    """
    encoder = getattr(model, "encoder", None)
    frozen = getattr(model, "frozen_encoder", None)
    if stage is not None:
        if not isinstance(getattr(encoder, "stages", None), nn.Sequential) or not hasattr(encoder, "cam_layer"):
            raise ValueError(
                f"Grad-CAM stage={stage} is an option of Swin models; {type(model).__name__} has no stages"
            )
        return CamSpec(list(model.cam_target_layers(stage=stage)), getattr(model, "cam_reshape", None), "model")
    if callable(getattr(model, "cam_target_layers", None)):
        return CamSpec(list(model.cam_target_layers()), getattr(model, "cam_reshape", None), "model")
    if encoder is not None and frozen is not None:
        return CamSpec([_swin_target(encoder), _swin_target(frozen)], tokens_to_nchw, "joint_swin")
    if encoder is not None and hasattr(encoder, "stages"):
        return CamSpec([_swin_target(encoder)], tokens_to_nchw, "swin")
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "layer4"):
        return CamSpec([backbone.layer4], None, "resnet")
    net = getattr(model, "net", None)
    if net is not None and hasattr(net, "encoder"):
        was_training = model.training
        model.eval()
        try:
            layer = deepest_feature_module(model, net.encoder, _smp_example(model))
        finally:
            model.train(was_training)
        return CamSpec([layer], None, "smp")
    raise ValueError(
        f"no Grad-CAM target layer known for {type(model).__name__} "
        f"({getattr(model, 'model_name', 'unregistered')}); give it cam_target_layers() and cam_reshape"
    )
