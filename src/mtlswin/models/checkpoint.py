"""Our checkpoint formats: a whole model, and a Swin encoder of ``mtlswin pretrain``.

A checkpoint of ours is one ``.safetensors`` file: the model's state dict plus, in its metadata,
``mtlswin_model`` (registry name) and ``mtlswin_config`` (the resolved config as JSON), so
:func:`mtlswin.models.factory.load_model` rebuilds the model from the file alone. Foreign weight files
(ImageNet Swin, the authors' checkpoints) are read and converted in :mod:`mtlswin.models.conversion`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from mtlswin.io import atomic_path

__all__ = [
    "CHECKPOINT_NAME",
    "ENCODER_FORMAT",
    "ENCODER_NAME",
    "SOURCE_FIELDS",
    "is_encoder_checkpoint",
    "read_checkpoint",
    "read_encoder_checkpoint",
    "resolve_checkpoint",
    "save_encoder",
    "save_model",
]

CHECKPOINT_NAME = "model.safetensors"  # the weights file inside a run folder
FORMAT = "mtlswin-checkpoint/1"
# An encoder checkpoint (``mtlswin pretrain``): a SwinEncoder's own state dict (keys ``patch_embed.*``, ``stages.*``,
# ``norm.*``), its sizes and input standardisation in ``mtlswin_encoder`` and how it was made in ``mtlswin_pretrain``.
ENCODER_FORMAT = "mtlswin-encoder/1"
ENCODER_NAME = "encoder.safetensors"
# Fields that point at other files: applied when the model was first built; the weights already hold them.
SOURCE_FIELDS = ("pretrained", "frozen_encoder")


def _config_dict(config: object) -> dict:
    to_dict = getattr(config, "to_dict", None)
    raw = to_dict() if callable(to_dict) else dataclasses.asdict(config)
    return json.loads(json.dumps(raw, default=list))


def save_model(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` (built by ``create_model``) to ``path`` (``.safetensors``) with its name and resolved config."""
    name, config = getattr(model, "model_name", None), getattr(model, "config", None)
    if name is None or config is None:
        raise ValueError("save_model needs a model built by mtlswin.models.create_model (with .model_name and .config)")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path {str(path)!r} must end with .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "mtlswin_model": name, "mtlswin_config": json.dumps(_config_dict(config))}
    with atomic_path(path) as tmp:  # a killed export leaves no truncated model.safetensors
        save_file(state, str(tmp), metadata=metadata)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder -> its ``model.safetensors``; a file stays as it is; ``FileNotFoundError`` if neither exists."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r} (expected a .safetensors file or a run folder)")
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, {"model": name, "config": dict})`` of our checkpoint file or run folder."""
    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError) on a broken file
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({err}); re-export or re-train it") from err
    if metadata.get("format") == ENCODER_FORMAT:
        raise ValueError(
            f"{str(path)!r} is a Swin encoder checkpoint (from `mtlswin pretrain`), not a whole model; use it to "
            f"initialise a Swin model with `model.pretrained: {path}` (e.g. --set model.pretrained={path})"
        )
    if "mtlswin_model" not in metadata:
        raise ValueError(
            f"{str(path)!r} is a safetensors file without mtlswin metadata; convert foreign weights with `mtlswin convert`"
        )
    meta = {"model": metadata["mtlswin_model"], "config": json.loads(metadata.get("mtlswin_config", "{}"))}
    return load_file(str(path)), meta


def _metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError) on a broken file
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({err})") from err


def save_encoder(encoder: nn.Module, path: str | Path, config: Mapping, info: Mapping | None = None) -> Path:
    """Write a Swin encoder's state dict (keys exactly as ``encoder.state_dict()``) to ``path`` (atomic).

    ``config``: the encoder's sizes (:meth:`mtlswin.models.configs.SwinConfig.encoder_kwargs`) plus
    ``input_mean`` / ``input_std``; ``info``: how it was made (method, steps, corpus statistics), for people.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"encoder checkpoint path {str(path)!r} must end with .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    metadata = {
        "format": ENCODER_FORMAT,
        "mtlswin_encoder": json.dumps(json.loads(json.dumps(dict(config), default=list))),
        "mtlswin_pretrain": json.dumps(dict(info or {}), default=str),
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def is_encoder_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a ``.safetensors`` file written by :func:`save_encoder`."""
    path = Path(path)
    return path.is_file() and path.suffix == ".safetensors" and _metadata(path).get("format") == ENCODER_FORMAT


def read_encoder_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, {"config": encoder sizes + input_mean/std, "info": dict})`` of an encoder checkpoint."""
    path = Path(path)
    metadata = _metadata(path)
    if metadata.get("format") != ENCODER_FORMAT:
        raise ValueError(f"{str(path)!r} is not an encoder checkpoint of `mtlswin pretrain` (format {ENCODER_FORMAT})")
    meta = {
        "config": json.loads(metadata["mtlswin_encoder"]),
        "info": json.loads(metadata.get("mtlswin_pretrain", "{}")),
    }
    return load_file(str(path)), meta
