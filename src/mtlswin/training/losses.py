"""Losses of the paper: segmentation (CE + Dice on masked samples), reconstruction (MSE), classification (CE),
and their weighted multitask sum.

All take LOGITS (never probabilities) as the models return them (docs/contracts.md):
``logits (B, n_classes)``, ``seg (B, K, H, W)``, ``rec (B, 1, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DEFAULT_LOSS_WEIGHTS",
    "MultitaskLoss",
    "SegmentationLoss",
    "default_loss_weights",
    "dice_loss",
    "segmentation_loss",
]

# The paper's task weights per subset (SPEC.md "Losses"); a single task gets weight 1.
DEFAULT_LOSS_WEIGHTS: dict[frozenset[str], dict[str, float]] = {
    frozenset({"cls", "seg", "rec"}): {"cls": 0.3, "seg": 0.4, "rec": 0.4},
    frozenset({"cls", "seg"}): {"cls": 0.4, "seg": 0.6},
    frozenset({"cls", "rec"}): {"cls": 0.4, "rec": 0.6},
}


def default_loss_weights(tasks: tuple[str, ...] | list[str]) -> dict[str, float]:
    """The paper's weights for a task subset: cls+seg+rec 0.3/0.4/0.4, cls+seg 0.4/0.6, cls+rec 0.4/0.6."""
    tasks = tuple(tasks)
    if len(tasks) == 1:
        return {tasks[0]: 1.0}
    key = frozenset(tasks)
    if key not in DEFAULT_LOSS_WEIGHTS:
        raise ValueError(
            f"no default loss weights for tasks {tasks}; set train.loss_weights, e.g. {{cls: 0.5, rec: 0.5}}"
        )
    return dict(DEFAULT_LOSS_WEIGHTS[key])


def dice_loss(seg_logits: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-sample soft Dice loss, as in the authors' code (background class included).

    ``p = softmax(seg_logits)``, ``t = one_hot(mask)``; for each sample b and class k
    ``D_bk = 1 - (2*sum(p*t) + eps) / (sum(p^2) + sum(t^2) + eps)`` (sums over pixels), and the loss of
    sample b is ``mean_k D_bk``.

    Args:
        seg_logits: ``(B, K, H, W)`` logits.
        mask: ``(B, H, W)`` long class indices in ``[0, K)``.
    Returns:
        ``(B,)`` loss per sample.
    """
    probs = seg_logits.float().softmax(dim=1)
    target = F.one_hot(mask.long(), probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)  # B, K, H, W
    inter = (probs * target).sum(dim=(2, 3))
    denom = (probs * probs).sum(dim=(2, 3)) + (target * target).sum(dim=(2, 3))
    return (1.0 - (2.0 * inter + eps) / (denom + eps)).mean(dim=1)


def segmentation_loss(
    seg_logits: Tensor, mask: Tensor, has_mask: Tensor, ce_weight: float = 0.4, dice_weight: float = 0.6
) -> Tensor:
    """``L_seg = mean over samples with a mask of (0.4 * CE_b + 0.6 * Dice_b)``; exactly 0 when none has a mask.

    ``CE_b`` is the pixel-mean cross-entropy of sample b, ``Dice_b`` the :func:`dice_loss`. A batch with no
    mask returns ``0 * seg_logits.sum()``: zero, never NaN, and still part of the graph (DDP-safe).

    Args:
        seg_logits: ``(B, K, H, W)`` logits; mask: ``(B, H, W)`` long; has_mask: ``(B,)`` bool.
    """
    has_mask = has_mask.bool()
    if seg_logits.shape[0] != mask.shape[0] or has_mask.shape[0] != mask.shape[0]:
        raise ValueError(
            f"batch sizes differ: seg {tuple(seg_logits.shape)}, mask {tuple(mask.shape)}, has_mask {tuple(has_mask.shape)}"
        )
    if not bool(has_mask.any()):
        return seg_logits.sum() * 0.0
    logits, target = seg_logits[has_mask], mask[has_mask].long()
    ce = F.cross_entropy(logits.float(), target, reduction="none").mean(dim=(1, 2))  # (M,)
    per_sample = ce_weight * ce + dice_weight * dice_loss(logits, target)
    return per_sample.mean()


class SegmentationLoss(nn.Module):
    """Module form of :func:`segmentation_loss` (``0.4*CE + 0.6*Dice`` on masked samples)."""

    def __init__(self, ce_weight: float = 0.4, dice_weight: float = 0.6) -> None:
        super().__init__()
        self.ce_weight, self.dice_weight = ce_weight, dice_weight

    def forward(self, seg_logits: Tensor, mask: Tensor, has_mask: Tensor) -> Tensor:
        return segmentation_loss(seg_logits, mask, has_mask, self.ce_weight, self.dice_weight)


class MultitaskLoss(nn.Module):
    """``L = sum_t w_t * L_t`` over the model's tasks, or Kendall uncertainty weighting.

    Parts: ``cls`` = CE(logits, label); ``seg`` = :func:`segmentation_loss`; ``rec`` = MSE(rec, image)
    against the 1-channel input. Weights default to the paper's (:func:`default_loss_weights`).

    With ``uncertainty=True`` (Kendall, Gal & Cipolla 2018; off by default, not in the paper) each task has
    a learned ``s_t = log sigma_t^2`` (init 0) and ``L = sum_t exp(-s_t) * L_t + s_t``.

    ``cls_reduction`` (optional module, e.g. :class:`mtlswin.methods.groupdro.GroupDRO`) replaces the mean of
    the per-sample cross-entropies: ``cls = cls_reduction(ce (B,), batch)``; its ``logs()`` (if any) are
    returned by :meth:`extra_logs`. Without it ``cls`` is the plain mean, as before.

    ``forward(outputs, batch) -> (total, parts)`` where ``parts`` maps each task to its (unweighted) loss.
    """

    def __init__(
        self,
        tasks: tuple[str, ...] | list[str],
        weights: dict[str, float] | None = None,
        uncertainty: bool = False,
        cls_reduction: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        unknown = [t for t in self.tasks if t not in ("cls", "seg", "rec")]
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of ('cls', 'seg', 'rec'), got {self.tasks}")
        self.weights = dict(weights) if weights is not None else default_loss_weights(self.tasks)
        missing = [t for t in self.tasks if t not in self.weights]
        if missing:
            raise ValueError(
                f"loss weights {self.weights} lack task(s) {missing}; give one weight per task {self.tasks}"
            )
        self.uncertainty = uncertainty
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks))) if uncertainty else None
        if cls_reduction is not None and "cls" not in self.tasks:
            raise ValueError(f"a classification objective (cls_reduction) needs a 'cls' task; tasks are {self.tasks}")
        self.cls_reduction = cls_reduction  # a submodule: its buffers (GroupDRO's q) go into checkpoints

    def extra_logs(self) -> dict[str, Tensor]:
        """Values the reduction wants logged (e.g. ``groupdro_q_<label>_<cue>``); empty without one."""
        logs = getattr(self.cls_reduction, "logs", None)
        return logs() if callable(logs) else {}

    def parts(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Unweighted loss of every task."""
        parts: dict[str, Tensor] = {}
        if "cls" in self.tasks and self.cls_reduction is None:
            parts["cls"] = F.cross_entropy(outputs["logits"].float(), batch["label"].long())
        elif "cls" in self.tasks:
            ce = F.cross_entropy(outputs["logits"].float(), batch["label"].long(), reduction="none")  # B
            parts["cls"] = self.cls_reduction(ce, batch)
        if "seg" in self.tasks:
            parts["seg"] = segmentation_loss(outputs["seg"], batch["mask"], batch["has_mask"])
        if "rec" in self.tasks:
            parts["rec"] = F.mse_loss(outputs["rec"].float(), batch["image"].float())
        return parts

    def forward(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        parts = self.parts(outputs, batch)
        if self.log_vars is None:
            total = sum(self.weights[t] * parts[t] for t in self.tasks)
        else:
            total = sum(torch.exp(-self.log_vars[i]) * parts[t] + self.log_vars[i] for i, t in enumerate(self.tasks))
        return total, parts
