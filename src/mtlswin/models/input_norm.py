"""Input standardisation inside the model: ``(x - input_mean) / input_std`` on the ``[0, 1]`` image.

Every caller (training, ``evaluate``, ``predict``, Grad-CAM, ``load_model``) feeds the windowed image of
the contract; a model trained on standardised input carries its mean and std in its config, so it is
saved with the weights and applied without being asked. The step holds no parameter and no buffer:
state dicts, and the converters of foreign checkpoints that count their keys, are unchanged. The
default (0, 1) is the identity, which converted authors' checkpoints keep.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["InputStandardize", "check_input_norm"]


def check_input_norm(model: str, mean: float, std: float) -> None:
    """A ``ValueError`` naming the model unless ``mean`` is finite and ``std`` finite and > 0."""
    if not math.isfinite(float(mean)) or not math.isfinite(float(std)) or float(std) <= 0:
        raise ValueError(f"{model}: input_mean must be finite and input_std finite and > 0, got {mean}, {std}")


class InputStandardize(nn.Module):
    """``x -> (x - mean) / std``; the identity (no op at all) for mean 0, std 1."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    @property
    def is_identity(self) -> bool:
        return self.mean == 0.0 and self.std == 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.is_identity else (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean:.6g}, std={self.std:.6g}"
