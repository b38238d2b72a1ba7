"""Model registry: one name -> one builder, and one factory for all models.

Every model of the project is registered here by name with a typed config dataclass, so a
model is "variants as data": ``create_model(name, **overrides)`` builds it, and the config
it was built with (``model.config``) is what a checkpoint stores to rebuild it.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from mtlswin.typecheck import check_type

__all__ = ["ModelEntry", "create_model", "get_entry", "list_models", "register_model", "test_overrides"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and how to make it small enough for CPU tests."""

    name: str
    config_cls: type  # a dataclass holding every knob of the model
    builder: Callable[[Any], nn.Module]  # config instance -> model
    test: dict[str, Any]  # overrides giving a model small enough for CPU tests (not Swin-T's "tiny")
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type, test: dict[str, Any] | None = None, description: str = ""):
    """Decorator registering ``builder(config) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if not dataclasses.is_dataclass(config_cls):
            raise TypeError(f"config_cls of {name!r} must be a dataclass")
        _REGISTRY[name] = ModelEntry(name, config_cls, builder, dict(test or {}), description)
        return builder

    return wrap


def _initials(name: str) -> str:
    return "".join(part[0] for part in name.split("_") if part)


def closest_name(word: str, choices: list[str]) -> str | None:
    """The entry of ``choices`` closest to ``word`` (for "did you mean" messages), None if there is none.

    An abbreviation counts as closest: ``learning_rate`` -> ``lr`` (initials), ``lr`` -> ``learning_rate``;
    otherwise the most similar spelling (:func:`difflib.get_close_matches`).
    """
    abbreviations = [c for c in choices if _initials(word) == c or _initials(c) == word]
    if len(abbreviations) == 1 and "_" in (word + abbreviations[0]):
        return abbreviations[0]
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.0)
    return match[0] if match else None


def _closest(word: str, choices: list[str]) -> str:
    match = closest_name(word, choices)
    return f" (did you mean {match!r}?)" if match else ""


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a ``KeyError`` naming the closest valid name otherwise."""
    _import_model_modules()
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown model {name!r}{_closest(name, list(_REGISTRY))}; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def build_config(name: str, **overrides: Any) -> Any:
    """The config dataclass of ``name`` with ``overrides`` applied; unknown keys are an error."""
    entry = get_entry(name)
    fields = [f.name for f in dataclasses.fields(entry.config_cls)]
    hints = typing.get_type_hints(entry.config_cls)
    for key in overrides:
        if key not in fields:
            raise ValueError(
                f"model {name!r} has no option {key!r}{_closest(key, fields)}; options: {', '.join(fields)}"
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


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _import_model_modules()
    return sorted(_REGISTRY)


def test_overrides(name: str) -> dict[str, Any]:
    """Overrides that make ``name`` small enough for CPU tests (img_size 32, a few channels)."""
    return dict(get_entry(name).test)


test_overrides.__test__ = False  # a library function, not a pytest test, when a test module imports it


def _import_model_modules() -> None:
    # Registration happens at import of the modules that define the models.
    from mtlswin import models  # noqa: F401
    from mtlswin.models import seg_gated  # noqa: F401  (segmentation for classification)
