"""Load what Grad-CAM needs from a run folder or a checkpoint, without the training package.

A run folder holds ``config.yaml`` (resolved config; we read its ``data`` section) and
``model.safetensors`` (our checkpoint, rebuilt by :func:`mtlswin.models.load_model`); a bare
checkpoint file works too (its folder's ``config.yaml`` is used when there is one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

__all__ = ["ExplainedRun", "build_datamodule", "load_explained_run", "resolve_data_path"]


@dataclass
class ExplainedRun:
    """A model to explain, the name it goes by in tables and figures, and its run's data settings."""

    name: str
    model: nn.Module
    data: dict[str, Any] = field(default_factory=dict)  # the `data` section of config.yaml ({} if none)
    root: Path | None = None  # the run folder (None for a checkpoint outside one)


def _read_config(path: Path) -> dict[str, Any]:
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping with sections model/data/..., got {type(config).__name__}")
    return config


def load_explained_run(path: str | Path) -> ExplainedRun:
    """A run folder (``RUN/config.yaml`` + ``RUN/model.safetensors``) or a checkpoint file -> :class:`ExplainedRun`."""
    from mtlswin.models import load_model

    path = Path(path)
    if path.is_dir():
        checkpoint, root = path / "model.safetensors", path
        if not checkpoint.is_file():
            raise ValueError(f"{path} is a folder without model.safetensors; pass a run folder or a checkpoint file")
        name = path.name
    elif path.is_file():
        checkpoint, root = path, path.parent if (path.parent / "config.yaml").is_file() else None
        name = path.parent.name if root is not None else path.stem
    else:
        raise ValueError(f"{path} does not exist; pass a run folder (with model.safetensors) or a checkpoint file")
    config = _read_config(root / "config.yaml") if root is not None and (root / "config.yaml").is_file() else {}
    model = load_model(checkpoint)
    model.eval()
    return ExplainedRun(name=name, model=model, data=dict(config.get("data") or {}), root=root)


def resolve_data_path(value: str | Path, root: Path | None) -> Path:
    """A data path from config.yaml: as given (absolute or relative to the working folder), else relative to the run."""
    path = Path(value)
    if path.exists() or path.is_absolute() or root is None:
        return path
    return root / path if (root / path).exists() else path


def build_datamodule(run: ExplainedRun, batch_size: int = 16, **overrides: Any):
    """The run's ``CTDataModule`` for evaluation (no augmentation, no worker processes), set up.

    ``overrides`` replace ``data`` settings of the run (e.g. ``manifest=..., splits=...``).
    """
    from mtlswin.data.datamodule import CTDataModule

    data = {**run.data, **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("manifest", "splits"):
        if not data.get(key):
            raise ValueError(f"run {run.name!r} has no data.{key} in config.yaml; pass --{key} PATH")
    window = data.get("window", (40, 80))
    img_size = data.get("img_size") or getattr(getattr(run.model, "config", None), "img_size", 224)
    module = CTDataModule(
        manifest=resolve_data_path(data["manifest"], run.root),
        splits=resolve_data_path(data["splits"], run.root),
        target=data.get("target", "hypodensity"),
        img_size=int(img_size),
        batch_size=batch_size,
        num_workers=0,
        augment="none",
        window=window if isinstance(window, str) else tuple(window),
        on_bad_row=data.get("on_bad_row", "error"),
    )
    module.setup()
    return module
