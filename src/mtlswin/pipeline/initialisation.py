"""The report's line on how the runs' encoders were initialised: random, or which pretrained file.

A pretrained encoder (``model.pretrained``, an encoder checkpoint of ``mtlswin pretrain`` or converted
weights) is named with what its metadata says it was trained on and for how long, the way a paper names
its ImageNet weights.
"""

from __future__ import annotations

from pathlib import Path

from mtlswin.models.checkpoint import is_encoder_checkpoint, read_encoder_checkpoint
from mtlswin.runs import stored_setting

__all__ = ["initialisation_markdown"]


def _describe(path: str) -> str:
    if not is_encoder_checkpoint(path):
        return f"`{path}` (weights not written by `mtlswin pretrain`: no record of what they were trained on)"
    info = read_encoder_checkpoint(path)[1]["info"]
    corpus = ", ".join(f"`{c}`" for c in info.get("corpus", [])) or "an unrecorded corpus"
    return (
        f"`{path}`: {info.get('method', 'pretraining')} on {info.get('slices', '?')} unlabeled slices of {corpus}, "
        f"{info.get('epochs', '?')} epochs ({info.get('steps', '?')} steps)"
    )


def initialisation_markdown(runs: list[Path]) -> str:
    """One paragraph: every run from scratch, or per pretrained file the runs that start from it."""
    by_file: dict[str | None, list[str]] = {}
    for run in runs:
        by_file.setdefault(stored_setting(run, "model", "pretrained"), []).append(run.name)
    if set(by_file) == {None}:
        return "**Initialisation.** Every run starts from random weights (from scratch); no encoder is pretrained.\n\n"
    parts = [f"{_describe(path)}: {', '.join(names)}" for path, names in by_file.items() if path]
    if None in by_file:
        parts.append(f"random weights (from scratch): {', '.join(by_file[None])}")
    return "**Initialisation.** " + "; ".join(parts) + ".\n\n"
