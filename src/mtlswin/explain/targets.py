"""Which layers Grad-CAM looks at: the model says so itself.

pytorch-grad-cam needs target layers whose output is a channels-first feature map. Every
classifier of the registry names them (docs/contracts.md): ``model.cam_target_layers()`` returns
the layers, and ``model.cam_reshape`` is ``None`` for CNN feature maps (already ``(B, C, h, w)``) or
a callable turning the NHWC tokens of a Swin stage into ``(B, C, h, w)``
(:func:`mtlswin.models.encoder.nhwc_to_nchw`). The choices, made in each model's class:

- Swin-based (``swin``, ``swin_tiny``, ``mtl_swin_unet``): the bottleneck ``encoder.norm`` (the
  classifier is GAP + linear on these tokens, so Grad-CAM there is each token's share of the logit);
- Joint-SwinTransformer (``joint_swin*``): ``encoder.norm`` and ``frozen_encoder.norm`` (the head
  pools the concatenation of both: one map each, averaged);
- segmentation for classification (``seg_gated_swin``): the trainable classifier's ``encoder.norm`` (the
  frozen segmenter only gates the input);
- ResNet152: ``backbone.layer4``; Joint-Learning (smp): the module of the encoder that outputs the
  deepest feature, which smp's classification head pools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["CamSpec", "cam_spec"]


@dataclass
class CamSpec:
    """Target layers of a model and the transform turning their output into ``(B, C, h, w)``."""

    layers: list[nn.Module]
    reshape: Callable[[torch.Tensor], torch.Tensor] | None  # None: the output is already NCHW


def cam_spec(model: nn.Module, stage: int | None = None) -> CamSpec:
    """``model.cam_target_layers()`` and ``model.cam_reshape``; a ``ValueError`` for a model without them.

    ``stage``: a Swin model's encoder stage instead of its bottleneck (a finer map); other models refuse it.
    """
    if not callable(getattr(model, "cam_target_layers", None)):
        raise ValueError(
            f"{type(model).__name__} ({getattr(model, 'model_name', 'unregistered')}) has no cam_target_layers(): "
            "Grad-CAM explains classifiers only; give the model cam_target_layers() and cam_reshape"
        )
    if stage is None:
        return CamSpec(list(model.cam_target_layers()), getattr(model, "cam_reshape", None))
    if not hasattr(getattr(model, "encoder", None), "cam_layer"):
        raise ValueError(f"Grad-CAM stage={stage} is an option of Swin models; {type(model).__name__} has no stages")
    return CamSpec(list(model.cam_target_layers(stage=stage)), getattr(model, "cam_reshape", None))
