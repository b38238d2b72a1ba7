"""Group DRO, online algorithm (Sagawa, Koh, Hashimoto & Liang 2020, Algorithm 1).

Groups ``g = 2 * label + cue`` (label x cue: 4 groups, named ``<label>_<cue>``). Per training batch, with the
per-sample cross-entropies ``l_b`` (B,):

    L_g = mean of l_b over the samples of group g              (groups present in the batch)
    q_g <- q_g * exp(eta * L_g)   for present g;  q <- q / sum(q)
    loss = sum_g q_g L_g                                       (q is a constant: no gradient through it)

``q`` (4,) starts uniform and is a buffer (saved in checkpoints; a resumed run continues from it). A group
absent from the batch keeps its UNNORMALISED weight (its factor is ``exp(0) = 1``, as in the authors' code,
where an absent group's loss is 0); the renormalisation then moves it down a little relative to the groups
that were present. In evaluation mode (validation) the loss is the plain mean and ``q`` does not move, so
``val/cls`` compares across rows. Under DDP each rank updates its own ``q`` from its own batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mtlswin.methods.registry import register_method

__all__ = ["GROUP_NAMES", "GroupDRO", "GroupDROSettings", "group_ids"]

GROUP_NAMES = ("0_0", "0_1", "1_0", "1_1")  # <label>_<cue>, in the order of q


def group_ids(batch: dict[str, Any]) -> Tensor:
    """``2 * label + cue`` (B,) long; a ``ValueError`` when the batch has no ``cue`` or a value outside {0, 1}."""
    if "cue" not in batch:
        raise ValueError(
            "train.objective 'groupdro' needs the manifest column `cue` (0/1 per slice; groups = label x cue), and "
            "this batch has none; use a manifest with a `cue` column (e.g. written by `mtlswin synth`)"
        )
    label, cue = batch["label"].long(), batch["cue"].long()
    bad = ~(((label == 0) | (label == 1)) & ((cue == 0) | (cue == 1)))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"train.objective 'groupdro' needs label and manifest column `cue` in {{0, 1}} on every training slice; "
            f"got label {int(label[i])}, cue {int(cue[i])} (-1 = empty cue)"
        )
    return 2 * label + cue


class GroupDRO(nn.Module):
    """The ``cls_reduction`` of :class:`mtlswin.training.losses.MultitaskLoss`: ``(l (B,), batch) -> scalar``."""

    def __init__(self, eta: float = 0.01, n_groups: int = len(GROUP_NAMES)) -> None:
        super().__init__()
        if not (eta > 0 and math.isfinite(eta)):
            raise ValueError(f"groupdro eta must be a finite number > 0, got {eta}")
        self.eta = float(eta)
        self.register_buffer("q", torch.full((n_groups,), 1.0 / n_groups))

    def group_losses(self, per_sample: Tensor, groups: Tensor) -> tuple[Tensor, Tensor]:
        """``(L_g (G,), present (G,) bool)``: mean loss per group, 0 for an absent group."""
        n = len(self.q)
        counts = torch.bincount(groups, minlength=n).to(per_sample.dtype)
        sums = torch.zeros(n, dtype=per_sample.dtype, device=per_sample.device).index_add(0, groups, per_sample)
        return sums / counts.clamp(min=1), counts > 0

    def forward(self, per_sample: Tensor, batch: dict[str, Any]) -> Tensor:
        if not self.training:
            return per_sample.mean()
        losses, present = self.group_losses(per_sample.float(), group_ids(batch).to(per_sample.device))
        with torch.no_grad():
            q = self.q * torch.exp(self.eta * losses.detach() * present)
            self.q.copy_(q / q.sum())
        return (self.q.clone() * losses).sum()  # a copy: the next update must not touch the saved q

    def logs(self) -> dict[str, Tensor]:
        """``groupdro_q_<label>_<cue>``: the current weights (logged as ``train/...``)."""
        return {f"groupdro_q_{name}": self.q[i].detach() for i, name in enumerate(GROUP_NAMES)}


@dataclass(frozen=True)
class GroupDROSettings:
    """``train.objective: {name: groupdro, eta: 0.01}``."""

    name: ClassVar[str] = "groupdro"
    eta: float = 0.01  # exponentiated-gradient step size of the group weights q

    def __post_init__(self) -> None:
        if not (self.eta > 0 and math.isfinite(self.eta)):
            raise ValueError(f"eta must be a finite number > 0, got {self.eta}")


def _build(settings: GroupDROSettings, model: nn.Module) -> GroupDRO:
    return GroupDRO(settings.eta)


register_method("groupdro", GroupDROSettings, "objective", _build)
