"""One interface for every candidate attribution method of docs/explanations.md: ``attribute(model, images, method)``.

Two kinds of method, both returning ``(B, H, W)`` maps in [0, 1] (float32) for ``images (B, 1, H, W)``:

- class-activation maps of one layer (:data:`~mtlswin.explain.gradcam.CAM_METHODS`, pytorch-grad-cam), through
  :func:`~mtlswin.explain.gradcam.compute_cam` at the layer ``cam_spec(model, stage)`` names;
- input attributions (:data:`INPUT_METHODS`, Captum) on the pixels themselves::

      integrated_gradients:  IG(x) = x * integral_0^1 dy/dx(a x) da     (baseline 0 = air; 32 Gauss-Legendre steps)
      input_x_gradient:      IxG(x) = x * dy/dx

  with ``y`` the ``target_class`` logit. Only the positive part is kept (evidence *for* the class, as the CAM
  methods' ReLU keeps), summed over the single channel, and each image's map is divided by its maximum (an
  all-zero map stays zero): the scale of a map carries no meaning across images, its ranks do.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients
from torch import nn

from mtlswin.explain.gradcam import LogitsOnly, _check_images, compute_cam
from mtlswin.explain.targets import CamSpec, cam_spec

__all__ = ["ALL_METHODS", "INPUT_METHODS", "METHODS", "attribute", "input_attribution"]

INPUT_METHODS = ("integrated_gradients", "input_x_gradient")
# The candidates of docs/explanations.md, in the table's order (a ROAD tie goes to the earlier one).
METHODS = ("gradcam", "hirescam", "gradcam++", "layercam", "eigencam", *INPUT_METHODS)
ALL_METHODS = (*METHODS, "eigengradcam")
IG_STEPS = 32


def _scale_by_max(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum; an all-zero map stays zero. ``maps (B, H, W) >= 0``."""
    peak = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def input_attribution(
    model: nn.Module, images: torch.Tensor, method: str = "integrated_gradients", target_class: int = 1
) -> np.ndarray:
    """Captum pixel attribution of the ``target_class`` logit -> ``(B, H, W)`` float32 in [0, 1] (module docstring).

    The model runs in eval mode; its previous mode is restored and parameter gradients are cleared afterwards.
    """
    if method not in INPUT_METHODS:
        raise ValueError(f"unknown input attribution method {method!r}; choose one of {', '.join(INPUT_METHODS)}")
    _check_images(images)
    was_training = model.training
    wrapped = LogitsOnly(model).eval()
    device = next(model.parameters()).device
    x = images.detach().to(device=device, dtype=torch.float32)
    try:
        with torch.no_grad():
            n_classes = wrapped(x[:1]).shape[-1]
        if not 0 <= target_class < n_classes:
            raise ValueError(f"target_class {target_class} out of range for a model with {n_classes} classes")
        if method == "integrated_gradients":
            attr = IntegratedGradients(wrapped).attribute(
                x, baselines=torch.zeros_like(x), target=target_class, n_steps=IG_STEPS, internal_batch_size=len(x)
            )
        else:
            attr = InputXGradient(wrapped).attribute(x.clone().requires_grad_(True), target=target_class)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    positive = attr.detach().clamp_min(0).sum(dim=1)  # B, H, W
    return _scale_by_max(positive.cpu().double().numpy())


def attribute(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "gradcam",
    target_class: int = 1,
    stage: int | None = None,
    spec: CamSpec | None = None,
) -> np.ndarray:
    """Map of ``method`` for ``images (B, 1, H, W)`` -> ``np.ndarray (B, H, W)`` float32 in [0, 1].

    ``method``: one of :data:`ALL_METHODS`. CAM methods map the layer ``spec`` (default ``cam_spec(model,
    stage)``: ``stage`` picks a Swin encoder stage instead of the bottleneck); input methods map the pixels and
    ignore ``stage``/``spec``. ``target_class``: the logit explained (1 = positive class). The model's mode is
    restored and its parameter gradients cleared afterwards.
    """
    if method not in ALL_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    _check_images(images)
    if method in INPUT_METHODS:
        return input_attribution(model, images, method=method, target_class=target_class)
    return compute_cam(model, images, method=method, target_class=target_class, spec=spec or cam_spec(model, stage))
