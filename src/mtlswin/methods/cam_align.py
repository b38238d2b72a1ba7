"""CAM alignment: the positive class's activation map pulled onto the hematoma mask (after GAIN, Li et al.
2018, and the mask-guided CAM losses that followed it).

    L = CE + lambda * (1 - mean over aligned slices b of Dice(M_b, T_b))

- ``A`` (B, h, w, C): the classifier's bottleneck tokens, the output of the model's single Grad-CAM target
  layer (``model.cam_target_layers()``, for Swin ``encoder.norm``), captured by a forward hook during the
  training forward (no second pass); ``w`` (C,): the head row of the positive class (index 1).
- ``M = up(ReLU(A w) / (max_{h, w} ReLU(A w) + eps))``: the class activation map (Zhou et al. 2016) of the
  GAP + linear head, scaled to [0, 1] per slice and upsampled bilinearly to the mask size (B, H, W);
  differentiable in the features and the head weight.
- ``T = (mask > 0)``; ``Dice(M, T) = (2 sum M T + eps) / (sum M + sum T + eps)`` (soft Dice, linear
  denominators; 1 iff ``M == T`` for a binary T).
- aligned slices: ``has_mask``, ``label == 1`` and a non-empty mask (a positive slice's hypodensity lies in
  its hematoma). Other slices add nothing; a batch without any gives an exact 0.

Supported: models whose classifier is GAP + ``model.head`` (``nn.Linear``) on one NHWC bottleneck that is
their only Grad-CAM target, the models that declare ``cam_align`` in the registry
(:class:`mtlswin.models.registry.Capabilities`). Others raise a ``ValueError`` naming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from mtlswin.methods.registry import register_method
from mtlswin.models.registry import models_with

__all__ = [
    "CamAlignGuidance",
    "CamAlignSettings",
    "cam_target",
    "class_activation_map",
    "soft_dice",
]

__all__ = ["CamAlignGuidance", "cam_target", "class_activation_map", "soft_dice"]


def class_activation_map(features: Tensor, weight: Tensor, size: tuple[int, int], eps: float = 1e-6) -> Tensor:
    """``(B, h, w, C)`` tokens and a head row ``(C,)`` -> CAM ``(B, H, W)`` in [0, 1] (``size = (H, W)``)."""
    cam = (features.float() * weight.float()).sum(dim=-1).relu()  # B, h, w
    cam = cam / (cam.amax(dim=(1, 2), keepdim=True) + eps)
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def soft_dice(cam: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-slice soft Dice ``(2 sum(M T) + eps) / (sum M + sum T + eps)`` of ``(B, H, W)`` maps -> ``(B,)``."""
    target = target.float()
    inter = (cam * target).sum(dim=(1, 2))
    return (2.0 * inter + eps) / (cam.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + eps)


def cam_target(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """``(layer whose NHWC output the head pools, the head)`` of a supported model, else a ``ValueError``."""
    supported = models_with("cam_align")
    name = getattr(model, "model_name", type(model).__name__)
    layers = model.cam_target_layers() if callable(getattr(model, "cam_target_layers", None)) else []
    head = getattr(model, "head", None)
    structure = len(layers) == 1 and isinstance(head, nn.Linear) and getattr(model, "cam_reshape", None) is not None
    if name not in supported or not structure:  # the structure: mtl_swin_unet without "cls" has no head
        raise ValueError(
            f"train.guidance 'cam_align' needs a classifier that is GAP + a linear head on one bottleneck of tokens "
            f"({', '.join(supported)}); {name} is not one"
        )
    return layers[0], head


class CamAlignGuidance:
    """The CAM-alignment term of :class:`mtlswin.training.module.MTLModule`: ``prepare`` hooks the bottleneck,
    the call unhooks it and returns ``{"cam_align": 1 - mean Dice}`` (unweighted)."""

    name = "cam_align"

    def __init__(self, weight: float, model: nn.Module, positive: int = 1) -> None:
        self.weight, self.positive = float(weight), positive
        self.layer, self.head = cam_target(model)
        self._handle: Any = None
        self._features: Tensor | None = None

    def _keep(self, module: nn.Module, args: Any, output: Tensor) -> None:
        self._features = output

    def prepare(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        self._release()
        self._handle = self.layer.register_forward_hook(self._keep)
        return batch

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = None

    def __call__(self, model: nn.Module, batch: dict[str, Any], outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self._release()
        features, self._features = self._features, None
        if features is None:
            raise RuntimeError("cam_align: the bottleneck hook saw no forward; call prepare() before the model")
        mask = batch["mask"]
        sel = batch["has_mask"].bool() & (batch["label"] == self.positive) & (mask > 0).flatten(1).any(dim=1)
        if not bool(sel.any()):
            return {self.name: outputs["logits"].sum() * 0.0}
        cam = class_activation_map(features[sel], self.head.weight[self.positive], tuple(mask.shape[-2:]))
        return {self.name: 1.0 - soft_dice(cam, mask[sel] > 0).mean()}


@dataclass(frozen=True)
class CamAlignSettings:
    """``train.guidance: {name: cam_align, weight: 1.0}`` (docs/methods.md says why this default)."""

    name: ClassVar[str] = "cam_align"
    weight: float = 1.0  # lambda of the term

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


def _build(settings: CamAlignSettings, model: nn.Module) -> CamAlignGuidance:
    return CamAlignGuidance(settings.weight, model)


register_method("cam_align", CamAlignSettings, "guidance", _build)
