"""Which path timm's Swin window attention takes: ``F.scaled_dot_product_attention`` off the CPU, the
explicit softmax on it.

timm's ``WindowAttention`` has both paths and picks one by its ``fused_attn`` flag (off for Swin unless
``TIMM_FUSED_ATTN=2``). They compute the same thing, the relative-position bias and the shift mask added to
the logits, and agree to ~1e-6 in float32 (tested). Which is faster depends on the device:

- On a GPU, SDPA's fused kernels are what the hardware wants.
- On the CPU, the bias needs a gradient, so SDPA takes its math path. That path's ``_safe_softmax`` adds
  ``isneginf``, ``all`` and ``where`` over every attention map. The demo Swin's eager training step is
  faster with the explicit softmax (``docs/speed.md``). At the demo's head width (16, so the
  scale 1/4 is a power of two) the two paths give the same bits in training (tested).

So a module that holds window attention (:class:`AttentionPath`: the Swin encoder and the Swin-Unet decoder)
sets the path from its input's device at each forward; a flag compare, and a switch only when the device
changes. :func:`set_fused_attention` pins one path instead (tests, benchmarks).
"""

from __future__ import annotations

import torch
from timm.models.swin_transformer import WindowAttention
from torch import nn

__all__ = ["AttentionPath", "set_fused_attention"]


def _set_timm_flags(module: nn.Module, fused: bool) -> None:
    for layer in module.modules():
        if isinstance(layer, WindowAttention):
            layer.fused_attn = fused


class AttentionPath:
    """Mixin for an ``nn.Module`` holding timm window attention: call :meth:`match_attention` at the top of
    its forward with the tensor it runs on.

    ``fused_attention``: ``None`` (default) chooses by device, SDPA anywhere but the CPU; ``True`` / ``False``
    pins SDPA / the explicit softmax.
    """

    fused_attention: bool | None = None
    _attention_fused: bool | None = None  # what the timm modules are set to now (None: not yet set)

    def match_attention(self, x: torch.Tensor) -> None:
        fused = self.fused_attention if self.fused_attention is not None else x.device.type != "cpu"
        if fused != self._attention_fused:
            _set_timm_flags(self, fused)  # type: ignore[arg-type]  (the mixin's class is an nn.Module)
            self._attention_fused = fused


def set_fused_attention(module: nn.Module, enable: bool | None = True) -> int:
    """Pin the window attention under ``module`` to SDPA (``True``) or the explicit softmax (``False``), or let
    it follow the device again (``None``), from the next forward on. Returns the number of attention modules."""
    for owner in module.modules():
        if isinstance(owner, AttentionPath):
            owner.fused_attention = enable  # its next forward sets the timm flags
    return sum(isinstance(layer, WindowAttention) for layer in module.modules())
