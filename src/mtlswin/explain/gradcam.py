"""Grad-CAM and its kin (HiResCAM, Grad-CAM++, LayerCAM, Eigen-CAM, Eigen-Grad-CAM) for every mtlswin classifier.

Grad-CAM (Selvaraju et al. 2017): for a target layer with activations ``A (B, C, h, w)`` and the
target logit ``y`` (positive class, index 1, by default)

    w_c = mean_{x,y} dy/dA_c(x, y)          cam(x, y) = ReLU(sum_c w_c A_c(x, y))

upsampled bilinearly to the input size and min-max scaled to [0, 1] per image. Where a model has
several target layers (Joint-SwinTransformer: trainable and frozen encoder), each layer gets its own
map and the maps are averaged, then rescaled, as pytorch-grad-cam does for multi-layer targets.
The other methods differ only in the map of one layer (docs/explanations.md); all come from pytorch-grad-cam.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, EigenGradCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from mtlswin.explain.targets import CamSpec, cam_spec

__all__ = ["CAM_METHODS", "LogitsOnly", "compute_cam"]

CAM_METHODS = {
    "gradcam": GradCAM,
    "hirescam": HiResCAM,
    "gradcam++": GradCAMPlusPlus,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
}


class LogitsOnly(nn.Module):
    """Wrap a dict-returning mtlswin model so pytorch-grad-cam sees ``logits (B, n_classes)`` only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if isinstance(out, dict):
            if "logits" not in out:
                raise ValueError(f"model output has no 'logits' (keys: {sorted(out)}); Grad-CAM needs a classifier")
            return out["logits"]
        return out


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor (B, 1, H, W) in [0, 1], got {shape}")


def _one_layer_cam(
    wrapped: nn.Module,
    layer: nn.Module,
    spec: CamSpec,
    images: torch.Tensor,
    method: str,
    target_class: int,
    aug_smooth: bool,
    eigen_smooth: bool,
) -> np.ndarray:
    """Map of one target layer, ``(B, H, W)`` in [0, 1].

    One CAM object per layer: pytorch-grad-cam pairs activations and gradients of several layers by
    the order autograd happens to visit them, which is not guaranteed for two parallel encoders.
    """
    cam = CAM_METHODS[method](model=wrapped, target_layers=[layer], reshape_transform=spec.reshape)
    try:
        # requires_grad on the input: activations of a frozen encoder get gradients too.
        x = images.detach().clone().requires_grad_(True)
        targets = [ClassifierOutputTarget(target_class) for _ in range(images.shape[0])]
        return cam(input_tensor=x, targets=targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)
    finally:
        cam.activations_and_grads.release()


def compute_cam(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "gradcam",
    target_class: int = 1,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
    spec: CamSpec | None = None,
) -> np.ndarray:
    """Class-activation maps of ``model`` for ``images (B, 1, H, W)`` -> ``np.ndarray (B, H, W)`` in [0, 1].

    ``method``: a key of :data:`CAM_METHODS`. ``target_class``: the logit explained
    (1 = positive class). ``aug_smooth``/``eigen_smooth``: pytorch-grad-cam's test-time-augmentation
    and first-principal-component smoothing. ``spec``: target layers (default :func:`cam_spec`).
    The model is put in eval mode while mapping; its previous mode is restored and the parameter
    gradients that the backward pass left are cleared.
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    _check_images(images)
    spec = spec or cam_spec(model)
    was_training = model.training
    wrapped = LogitsOnly(model)
    device = next(model.parameters()).device
    images = images.to(device=device, dtype=torch.float32)
    try:
        with torch.no_grad():
            n_classes = wrapped.eval()(images[:1]).shape[-1]
        if not 0 <= target_class < n_classes:
            raise ValueError(f"target_class {target_class} out of range for a model with {n_classes} classes")
        maps = [
            _one_layer_cam(wrapped, layer, spec, images, method, target_class, aug_smooth, eigen_smooth)
            for layer in spec.layers
        ]
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)  # leave no parameter gradients behind
    mean = np.mean(np.stack(maps, axis=1), axis=1)
    return scale_cam_image(mean) if len(maps) > 1 else mean.astype(np.float32)
