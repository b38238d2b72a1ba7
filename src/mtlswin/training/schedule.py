"""The paper's optimiser and learning-rate schedule: SGD with poly decay per iteration.

``lr(iter) = base_lr * (1 - iter / max_iter) ** power`` (power 0.9), stepped after every optimiser step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["PolyFactor", "build_optimizer", "poly_lr", "poly_scheduler"]


def poly_lr(base_lr: float, iteration: int, max_iter: int, power: float = 0.9) -> float:
    """``base_lr * (1 - iteration / max_iter) ** power``, clamped at 0 once ``iteration >= max_iter``."""
    if max_iter <= 0:
        raise ValueError(f"max_iter must be > 0, got {max_iter}")
    return base_lr * max(0.0, 1.0 - iteration / max_iter) ** power


class PolyFactor:
    """Picklable multiplier ``(1 - it/max_iter) ** power`` for ``LambdaLR`` (a class, not a lambda, so it pickles)."""

    def __init__(self, max_iter: int, power: float = 0.9) -> None:
        if max_iter <= 0:
            raise ValueError(f"max_iter must be > 0, got {max_iter}; is the train split empty?")
        self.max_iter, self.power = int(max_iter), float(power)

    def __call__(self, iteration: int) -> float:
        return poly_lr(1.0, iteration, self.max_iter, self.power)


def build_optimizer(
    params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.9, weight_decay: float = 1e-4
) -> torch.optim.SGD:
    """SGD as in the paper: momentum 0.9, weight decay 1e-4."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def poly_scheduler(optimizer: torch.optim.Optimizer, max_iter: int, power: float = 0.9) -> LambdaLR:
    """``LambdaLR`` giving :func:`poly_lr` when stepped once per iteration."""
    return LambdaLR(optimizer, PolyFactor(max_iter, power))
