"""Right for the Right Reasons (Ross, Hughes & Doshi-Velez 2017; GradMask, Simpson et al. 2019).

The classifier's input gradient is penalised where the decision must not look:

    L = CE + lambda * R,     g_b = d/dx_b sum_k log p_k(x_b)            (B, 1, H, W), create_graph=True
    R = mean over penalised slices b of  sum_{i, j} (1 - A_b(i, j)) * g_b(i, j)^2

``p = softmax(logits)``; ``A_b`` (``(H, W)``, 1 = allowed) is the EVIDENCE of slice b. What lies "outside
the evidence" (``1 - A_b``) on the three kinds of slice of the training hospitals:

(a) a slice with a non-empty mask (``has_mask`` and some hematoma pixel): everything outside the hematoma
    mask dilated by ``dilation`` pixels (a square ``(2d+1)^2`` max filter). The target (hypodensity) is a
    marker INSIDE the hematoma, so the evidence for it, present or absent, lies in the hematoma; the margin
    forgives the blurred edge and small registration errors. This holds for negatives with a hematoma too:
    "this hematoma is not hypodense" is read in the hematoma as well.
(b) ``has_mask`` True but the mask empty (the slice was annotated and has no hematoma): EVERYWHERE. With no
    hematoma there is no hypodensity to see, so no pixel is evidence of the label; any pixel the decision
    is sensitive to (the atrophy cue above all) is outside the evidence. Penalising nowhere would leave
    unconstrained exactly the slices on which the shortcut is learned most cheaply.
(c) ``has_mask`` False (no annotation; hospitals 5-11 and unannotated slices): unknown, NO penalty.

Normalisation: the per-slice SUM of squared gradients outside the evidence (Ross et al.'s form), averaged
over the penalised slices (a, b) of the batch; 0 when the batch has none. Slices (c) do not dilute the mean.
Note ``d/dx (log p_0 + log p_1) = (1 - 2 p_1) dz/dx`` for two classes (``z`` = logit difference): the
penalty vanishes at ``p_1 = 0.5`` and is strongest on confident slices, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlswin.methods.registry import register_method

__all__ = ["RRRGuidance", "RRRSettings", "evidence_region", "input_gradient", "rrr_penalty"]


def evidence_region(mask: Tensor, has_mask: Tensor, dilation: int = 2) -> tuple[Tensor, Tensor]:
    """``(allowed (B, H, W) float in {0, 1}, penalised (B,) bool)`` from the batch's ``mask`` and ``has_mask``.

    ``allowed`` is the hematoma (``mask > 0``) dilated by ``dilation`` pixels: empty for cases (b) and (c) of
    the module docstring; ``penalised`` is ``has_mask`` (case (c) is not penalised).
    """
    hematoma = (mask > 0).float()[:, None]  # B, 1, H, W
    if dilation > 0:
        hematoma = F.max_pool2d(hematoma, kernel_size=2 * dilation + 1, stride=1, padding=dilation)
    return hematoma[:, 0], has_mask.bool()


def rrr_penalty(input_grad: Tensor, allowed: Tensor, penalised: Tensor) -> Tensor:
    """``mean_{b penalised} sum_{c, i, j} (1 - allowed_b(i, j)) * input_grad_b(c, i, j)^2``; 0 if none is penalised.

    Args:
        input_grad: ``(B, C, H, W)`` gradient of the summed log-probabilities w.r.t. the input.
        allowed: ``(B, H, W)`` evidence in [0, 1] (1 = the gradient may lie there).
        penalised: ``(B,)`` bool, the slices that count.
    """
    if input_grad.ndim != 4 or allowed.shape != (input_grad.shape[0], *input_grad.shape[2:]):
        raise ValueError(f"input_grad (B, C, H, W) and allowed (B, H, W) disagree: {tuple(input_grad.shape)}, "
                         f"{tuple(allowed.shape)}")  # fmt: skip
    per_slice = (input_grad.float().pow(2).sum(dim=1) * (1.0 - allowed.float())).sum(dim=(1, 2))  # B
    if not bool(penalised.any()):
        return per_slice.sum() * 0.0
    return per_slice[penalised.bool()].mean()


def input_gradient(logits: Tensor, image: Tensor) -> Tensor:
    """``d sum_{b, k} log softmax(logits)_bk / d image`` with ``create_graph=True`` (the penalty trains).

    Summing over the batch gives each slice its own gradient (the models normalise per sample: LayerNorm).
    """
    log_p = logits.float().log_softmax(dim=1).sum()
    (grad,) = torch.autograd.grad(log_p, image, create_graph=True)
    return grad


class RRRGuidance:
    """The RRR term of :class:`mtlswin.training.module.MTLModule`: ``prepare`` makes the image a leaf that
    requires a gradient; the call returns ``{"rrr": R}`` (unweighted; the module adds ``weight * R``)."""

    name = "rrr"

    def __init__(self, weight: float, dilation: int = 2) -> None:
        self.weight, self.dilation = float(weight), int(dilation)

    def prepare(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        return {**batch, "image": batch["image"].detach().requires_grad_(True)}

    def __call__(self, model: nn.Module, batch: dict[str, Any], outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        allowed, penalised = evidence_region(batch["mask"], batch["has_mask"], self.dilation)
        if not bool(penalised.any()):  # no double backward for a batch without annotations
            return {self.name: outputs["logits"].sum() * 0.0}
        grad = input_gradient(outputs["logits"], batch["image"])
        return {self.name: rrr_penalty(grad, allowed, penalised)}


@dataclass(frozen=True)
class RRRSettings:
    """``train.guidance: {name: rrr, weight: 10.0, dilation: 2}`` (docs/methods.md says why these defaults)."""

    name: ClassVar[str] = "rrr"
    weight: float = 10.0  # lambda of the term
    dilation: int = 2  # pixels by which the hematoma mask is dilated before "outside" is taken

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if self.dilation < 0:
            raise ValueError(f"dilation must be >= 0 pixels, got {self.dilation}")


def _build(settings: RRRSettings, model: nn.Module) -> RRRGuidance:
    return RRRGuidance(settings.weight, settings.dilation)


register_method("rrr", RRRSettings, "guidance", _build)
