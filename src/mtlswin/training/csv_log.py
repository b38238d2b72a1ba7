"""Lightning's ``logs/metrics.csv`` across a resume, for ``train`` and ``pretrain`` alike.

Lightning's CSVLogger starts the file afresh when a run resumes; :func:`take_csv_log` keeps the old rows
before the resume and :func:`merge_csv_log` puts them back in front of the new ones afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from mtlswin.io import atomic_path

__all__ = ["merge_csv_log", "take_csv_log"]


def take_csv_log(run_dir: Path) -> tuple[pd.DataFrame, int, Path] | None:
    """Before a resume: keep ``logs/metrics.csv`` as ``logs/metrics.csv.before-resume`` (Lightning's CSVLogger
    would delete it); a crash before the merge leaves the history there, and the next resume reads it back."""
    path = run_dir / "logs" / "metrics.csv"
    kept = path.with_name(path.name + ".before-resume")
    if path.is_file() and not kept.is_file():
        os.replace(path, kept)
    if not kept.is_file():
        return None
    old = pd.read_csv(kept)
    step = int(torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"])
    return old, step, kept


def merge_csv_log(run_dir: Path, old: pd.DataFrame, resume_step: int, kept: Path) -> None:
    """After a resume: the old rows logged before the resumed step, then the new rows; the kept copy goes last."""
    path = run_dir / "logs" / "metrics.csv"
    new = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    merged = pd.concat([old[old["step"] < resume_step], new], ignore_index=True)
    with atomic_path(path) as tmp:
        merged.to_csv(tmp, index=False)
    kept.unlink()
