"""Atomic checkpoint writes: a failed save leaves the previous file intact and no temp file behind."""

from __future__ import annotations

import pytest
import torch

from mtlswin.training.checkpoint_io import AtomicCheckpointIO, atomic_torch_save


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("boom in the middle of the write")


def test_save_and_load_round_trip(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.arange(3.0)}, "global_step": 7}, tmp_path / "ck" / "last.ckpt")
    loaded = io.load_checkpoint(tmp_path / "ck" / "last.ckpt")
    assert loaded["global_step"] == 7 and torch.equal(loaded["state_dict"]["w"], torch.arange(3.0))


def test_failed_write_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"global_step": 1, "w": torch.ones(1000)}, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"global_step": 2, "w": torch.zeros(1000), "bad": Unpicklable()}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
