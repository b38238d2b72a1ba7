"""Optimisers and learning-rate schedules: the paper's recipe and a from-scratch one.

- ``sgd`` (the paper): SGD, momentum 0.9, weight decay 1e-4 on every parameter.
- ``adamw`` (training from scratch, e.g. the CPU demo, where no ImageNet initialisation can be had
  offline): AdamW, weight decay on weight matrices only (not on norms, biases or position tables,
  timm's ``param_groups_weight_decay``).

Schedules, a factor of the base rate per optimiser step ``it`` of ``max_iter``, after a linear
warm-up of ``warmup`` steps (``factor = (it + 1) / warmup`` while ``it < warmup``):

- ``poly`` (the paper): ``(1 - t) ** power``;
- ``cosine``: ``0.5 * (1 + cos(pi * t))``;

with ``t = (it - warmup) / (max_iter - warmup)`` clamped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from timm.optim import param_groups_weight_decay
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from mtlswin.config import OPTIMIZERS, SCHEDULES

__all__ = ["OPTIMIZERS", "SCHEDULES", "LRFactor", "build_optimizer", "build_scheduler", "poly_lr"]


def poly_lr(base_lr: float, iteration: int, max_iter: int, power: float = 0.9) -> float:
    """``base_lr * (1 - iteration / max_iter) ** power``, clamped at 0 once ``iteration >= max_iter``."""
    if max_iter <= 0:
        raise ValueError(f"max_iter must be > 0, got {max_iter}")
    return base_lr * max(0.0, 1.0 - iteration / max_iter) ** power


class LRFactor:
    """Picklable multiplier of the base rate for ``LambdaLR`` (see the module docstring for the formula)."""

    def __init__(self, max_iter: int, schedule: str = "poly", power: float = 0.9, warmup: int = 0) -> None:
        if max_iter <= 0:
            raise ValueError(f"max_iter must be > 0, got {max_iter}; is the train split empty?")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if warmup < 0:
            raise ValueError(f"warm-up steps must be >= 0, got {warmup}")
        self.max_iter, self.schedule, self.power = int(max_iter), schedule, float(power)
        self.warmup = min(int(warmup), self.max_iter - 1)

    def __call__(self, iteration: int) -> float:
        if iteration < self.warmup:
            return (iteration + 1) / self.warmup
        t = min(1.0, max(0.0, (iteration - self.warmup) / max(1, self.max_iter - self.warmup)))
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return (1.0 - t) ** self.power


def build_optimizer(
    params: Iterable[nn.Parameter] | nn.Module,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    name: str = "sgd",
) -> torch.optim.Optimizer:
    """SGD as in the paper (momentum, weight decay on everything), or AdamW (decay on weight matrices only).

    ``params``: a module (AdamW groups its trainable parameters by shape) or an iterable of parameters.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if name == "sgd":
        trainable = params.parameters() if isinstance(params, nn.Module) else params
        return torch.optim.SGD([p for p in trainable if p.requires_grad], lr=lr, momentum=momentum,
                               weight_decay=weight_decay)  # fmt: skip
    if isinstance(params, nn.Module):
        groups = param_groups_weight_decay(params, weight_decay)  # skips frozen parameters itself
    else:
        groups = [{"params": [p for p in params if p.requires_grad], "weight_decay": weight_decay}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=_fusable(groups))


def _fusable(groups: list[dict]) -> bool | None:
    """True when every parameter lives where torch has a fused AdamW kernel (CPU, CUDA): one kernel over all
    tensors instead of a dozen small ones per tensor (docs/speed.md; the weights agree with
    the for-loop implementation to float rounding, tests/training/test_schedule.py). None: torch's default."""
    params = [p for g in groups for p in g["params"]]
    fusable = bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    return True if fusable else None


def build_scheduler(
    optimizer: torch.optim.Optimizer, max_iter: int, schedule: str = "poly", power: float = 0.9, warmup: int = 0
) -> LambdaLR:
    """``LambdaLR`` stepped once per optimiser step with :class:`LRFactor`."""
    return LambdaLR(optimizer, LRFactor(max_iter, schedule, power, warmup))
