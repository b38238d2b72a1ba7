"""Rows made from another trained run instead of trained: how each is made, and how to tell it is up to date.

``swin_dfr-seed<k>`` is ``swin-seed<k>`` with its last layer refitted by Deep Feature Reweighting on the
group-balanced validation split (:func:`mtlswin.posthoc.dfr.dfr_run`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mtlswin.pipeline.claims import seed_of
from mtlswin.posthoc.dfr import dfr_run

__all__ = ["dfr_done", "make_dfr"]


def _newer(path: Path, than: Path) -> bool:
    return path.is_file() and than.is_file() and path.stat().st_mtime >= than.stat().st_mtime


def dfr_done(run: Path, source: Path) -> bool:
    """The DFR run exists and was made from the source run's current weights."""
    return (run / "model.safetensors").is_file() and _newer(run / "dfr.json", source / "model.safetensors")


def make_dfr(run: Path, source: Path) -> None:
    """(Re)make the DFR run ``run`` from ``source`` (an older one is replaced whole)."""
    shutil.rmtree(run, ignore_errors=True)
    dfr_run(source, run, seed=seed_of(run))
