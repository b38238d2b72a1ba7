"""Build and load models: ``create_model(name, **overrides)``, its config, and ``load_model(path)`` of our checkpoints.

Every model is "variants as data": its registry entry (:mod:`mtlswin.models.registry`) holds a typed config
dataclass, ``create_model`` applies the overrides to it and calls the builder, and the config the model
was built with (``model.config``) is what :func:`mtlswin.models.checkpoint.save_model` stores, so
:func:`load_model` rebuilds the model from the file alone.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlswin.models.checkpoint import SOURCE_FIELDS, read_checkpoint
from mtlswin.models.registry import did_you_mean, get_entry
from mtlswin.typecheck import check_type

__all__ = ["build_config", "create_model", "load_model"]


def build_config(name: str, **overrides: Any) -> Any:
    """The config dataclass of ``name`` with ``overrides`` applied; unknown keys are an error."""
    entry = get_entry(name)
    fields = [f.name for f in dataclasses.fields(entry.config_cls)]
    hints = typing.get_type_hints(entry.config_cls)
    for key in overrides:
        if key not in fields:
            raise ValueError(
                f"model {name!r} has no option {key!r}{did_you_mean(key, fields)}; options: {', '.join(fields)}"
            )
    return entry.config_cls(**{key: check_type(key, value, hints[key]) for key, value in overrides.items()})


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``; keyword arguments override fields of its config.

    Every model takes a float image ``(B, 1, H, W)`` in [0, 1] and returns a dict with the outputs
    it has: ``logits (B, n_classes)``, ``seg (B, n_seg_classes, H, W)`` logits, ``rec (B, 1, H, W)``.
    """
    config = build_config(name, **overrides)
    model = get_entry(name).builder(config)
    model.model_name = name
    model.config = config
    return model


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved by :func:`mtlswin.models.checkpoint.save_model` from that file (or a run folder)
    alone; strict load.

    The fields that name other files (:data:`mtlswin.models.checkpoint.SOURCE_FIELDS`) are not opened again:
    the saved weights already hold what they gave. They are put back into ``model.config`` afterwards.
    """
    state, meta = read_checkpoint(path)
    config = dict(meta["config"])
    sources = {k: config[k] for k in SOURCE_FIELDS if k in config}
    model = create_model(meta["model"], **{**config, **dict.fromkeys(sources)})
    model.load_state_dict(state, strict=True)
    if sources:
        model.config = dataclasses.replace(model.config, **sources)
    return model.to(map_location)
