"""The state of a run folder, as ``reproduce`` reads it: trained with the current config, evaluated, set aside.

A run is done when its exported model reads, its ``config.yaml`` is there and the digest of its resolved config
(:data:`mtlswin.runs.DIGEST_FILE`) equals the one the current settings give; a run folder trained with other
settings is renamed, never deleted, before the row is trained afresh.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mtlswin.runs import DIGEST_FILE, run_tasks

EVAL_SPLITS = ("test_a", "test_b")  # the test sets every run is scored on (and test_trap where there is one)

__all__ = ["EVAL_SPLITS", "has_logits", "run_done", "run_evaluated", "set_aside", "stored_digest"]


def stored_digest(run: Path) -> str | None:
    """The config digest ``train`` stored in ``run`` (None: none stored)."""
    path = run / DIGEST_FILE
    return path.read_text().strip() if path.is_file() else None


def run_done(run: Path, digest: str | None) -> bool:
    """Done: a readable model.safetensors header, config.yaml, and the stored config digest equal to ``digest``."""
    if not (run / "config.yaml").is_file() or stored_digest(run) != digest:
        return False
    try:
        run_tasks(run)
    except (OSError, ValueError):
        return False
    return True


def set_aside(run: Path, digest: str | None, log: Callable[[str], None]) -> None:
    """A run folder trained with other settings is renamed (never deleted) before this row is trained afresh."""
    old = stored_digest(run)
    if not run.exists() or old in (None, digest):
        return
    aside = run.with_name(f"{run.name}.replaced-{old[:12]}")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(run, aside)
    log(f"{run.name}: its config changed (another --set?); the old run was moved to {aside}")


def run_evaluated(run: Path, splits: tuple[str, ...] = EVAL_SPLITS) -> bool:
    """``metrics.json`` reads and has every split of ``splits``."""
    path = run / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return False
    return isinstance(metrics, dict) and all(isinstance(metrics.get(s), dict) for s in splits)


def has_logits(run: Path) -> bool:
    """The run's model classifies (it has the ``cls`` task)."""
    return "cls" in run_tasks(run)
