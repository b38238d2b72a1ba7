"""Atomic checkpoint writes: a run killed at any instant leaves either the old or the new file, never half of one.

Lightning's ``TorchCheckpointIO`` writes the final path directly; a SIGKILL or power loss during that write
leaves a truncated ``last.ckpt`` that cannot be resumed from. Here the checkpoint is written through
:func:`mtlswin.io.atomic_path`, the project's one atomic writer: a temporary file in the same folder,
``fsync``-ed, ``os.replace``-d over the target (atomic on POSIX and Windows), then the folder ``fsync``-ed
so the rename itself survives a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mtlswin.io import atomic_path

__all__ = ["AtomicCheckpointIO", "atomic_torch_save"]


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` atomically (:func:`mtlswin.io.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose ``save_checkpoint`` is :func:`atomic_torch_save`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)
