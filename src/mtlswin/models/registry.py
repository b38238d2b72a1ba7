"""Model registry, bookkeeping only: one name -> one :class:`ModelEntry` (config, builder, test sizes, capabilities).

Each family module (``classifier``, ``multitask``, ``joint``, ``seg_gated``, ``baselines``) registers its models
with :func:`register_model` when it is imported. The package ``mtlswin.models`` imports every family, and
Python runs a package's ``__init__`` before any of its modules, so whoever imports this module finds every
model registered. This module imports nothing else of ``mtlswin.models``: building a model is
:mod:`mtlswin.models.factory`.

A model declares at registration what it offers beyond the output contract (:class:`Capabilities`);
callers ask :func:`get_entry` or :func:`models_with` instead of keeping lists of model names.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = [
    "Capabilities",
    "ModelEntry",
    "closest_name",
    "did_you_mean",
    "get_entry",
    "list_models",
    "models_with",
    "register_model",
    "test_overrides",
]


@dataclass(frozen=True)
class Capabilities:
    """What a model offers beyond the output contract; every field defaults to False (not offered).

    A capability is declared for the model as its config builds it by default; where a config can take
    a part away (``mtl_swin_unet`` with ``tasks: seg+rec`` has no classifier), the caller still checks
    the built model.
    """

    # Its classifier is one ``nn.Linear`` (``model.head``) on pooled features: ``model.pooled_features(x)``
    # where the model has that method, else GAP of ``model.encoder(x).bottleneck``, (B, C). DFR, cue probe.
    linear_head: bool = False
    # Its one Grad-CAM target layer (``cam_target_layers()``) outputs the (B, h, w, C) tokens that the linear
    # head pools, so the class activation map is ``tokens . head row``: CAM alignment.
    cam_align: bool = False
    # A part of it is frozen and loaded from ``model.frozen_encoder`` (a trained Swin-Unet run); without that
    # file the part stays randomly initialised.
    frozen_encoder: bool = False
    # ``mtlswin pretrain`` (SimMIM) can pretrain its Swin encoder at the model's sizes.
    simmim_pretrain: bool = False


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it, how to make it small enough for CPU tests, what it offers."""

    name: str
    config_cls: type  # a dataclass holding every knob of the model
    builder: Callable[[Any], nn.Module]  # config instance -> model
    test: dict[str, Any]  # overrides giving a model small enough for CPU tests (not Swin-T's "tiny")
    description: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)


_REGISTRY: dict[str, ModelEntry] = {}
_CAPABILITIES = tuple(f.name for f in dataclasses.fields(Capabilities))


def register_model(
    name: str,
    config_cls: type,
    test: dict[str, Any] | None = None,
    description: str = "",
    capabilities: Capabilities | None = None,
):
    """Decorator registering ``builder(config) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if not dataclasses.is_dataclass(config_cls):
            raise TypeError(f"config_cls of {name!r} must be a dataclass")
        if capabilities is not None and not isinstance(capabilities, Capabilities):
            raise TypeError(f"capabilities of {name!r} must be a Capabilities, got {type(capabilities).__name__}")
        entry = ModelEntry(name, config_cls, builder, dict(test or {}), description, capabilities or Capabilities())
        _REGISTRY[name] = entry
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


def did_you_mean(word: str, choices: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``word``, or ``""`` when there is none."""
    match = closest_name(word, choices)
    return f" (did you mean {match!r}?)" if match else ""


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a ``KeyError`` naming the closest valid name otherwise."""
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown model {name!r}{did_you_mean(name, list(_REGISTRY))}; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def models_with(capability: str) -> list[str]:
    """Names of the models that declare ``capability`` (a field of :class:`Capabilities`), in registration order.

    For error messages that name the models a method supports; an unknown capability is a ``ValueError``.
    """
    if capability not in _CAPABILITIES:
        raise ValueError(
            f"unknown capability {capability!r}{did_you_mean(capability, list(_CAPABILITIES))}; "
            f"known: {', '.join(_CAPABILITIES)}"
        )
    return [name for name, entry in _REGISTRY.items() if getattr(entry.capabilities, capability)]


def test_overrides(name: str) -> dict[str, Any]:
    """Overrides that make ``name`` small enough for CPU tests (img_size 32, a few channels)."""
    return dict(get_entry(name).test)


test_overrides.__test__ = False  # a library function, not a pytest test, when a test module imports it
