"""Subnormal flushing during training: on inside the block, restored after, no change to normal floats."""

from __future__ import annotations

import torch

from mtlswin.training.denormals import flushed_denormals

TINY = 1e-40  # subnormal in float32 (the smallest normal is 1.18e-38)


def _value(x: float) -> float:
    return torch.tensor(x, dtype=torch.float32).item()


def test_subnormals_flush_inside_the_block_and_come_back_after():
    assert _value(TINY) > 0
    with flushed_denormals() as supported:
        if supported:  # x86 with SSE3 (every CPU this project runs on); elsewhere torch keeps them
            assert _value(TINY) == 0.0
            assert (torch.tensor(1e-20) * torch.tensor(1e-20)).item() == 0.0  # products flush too
        assert _value(1.5e-38) == torch.tensor(1.5e-38).item() > 0  # normal floats untouched
    assert _value(TINY) > 0  # restored: nothing leaks into the rest of the process


def test_disabled_changes_nothing():
    with flushed_denormals(enable=False) as supported:
        assert supported is False
        assert _value(TINY) > 0


def test_softmax_of_the_shift_mask_is_where_subnormals_come_from():
    # the reason for the lever: exp(-100) under a -100 shift mask is subnormal in float32
    logits = torch.tensor([0.0, -100.0])
    p = logits.softmax(-1)
    assert 0 < p[1].item() < 1.18e-38
    with flushed_denormals() as supported:
        if supported:
            assert logits.softmax(-1)[1].item() == 0.0
