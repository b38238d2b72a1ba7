"""Flush subnormal floats to zero while training on a CPU (``torch.set_flush_denormal``).

Why: Swin's shifted-window mask adds -100 to the logits of token pairs from different image regions, so
the softmax produces probabilities near ``exp(-100) ~ 4e-44``: subnormal float32 numbers. x86 cores handle
arithmetic on subnormals in microcode, tens of times slower than on normal numbers, and the products of
the attention (``P @ V`` and the whole backward) are full of them, so flushing them shortens a demo Swin
step by about a fifth (docs/speed.md). Values below 1.2e-38 become 0, far below anything a
float32 training step resolves; CPU-only (GPUs flush in their kernels already).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["flushed_denormals"]


@contextmanager
def flushed_denormals(enable: bool = True) -> Iterator[bool]:
    """Flush subnormals to zero inside the block, then restore the setting before it; yields whether the CPU
    supports it (SSE3 and later do; elsewhere nothing changes)."""
    if not enable:
        yield False
        return
    # torch has no getter: probe the current state with a subnormal (1e-40 stays 1e-40 unless flushing)
    was_on = bool(torch.tensor(1e-40, dtype=torch.float32).item() == 0.0)
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported and not was_on:
            torch.set_flush_denormal(False)
