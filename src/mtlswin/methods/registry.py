"""Methods as registered parts: a name, a settings dataclass with its defaults, a kind and a builder.

Kinds (:data:`KINDS`):

- ``guidance``: a term added to the TRAINING loss (``train.guidance``); ``build(settings, model)`` returns an
  object with ``.name``, ``.weight``, ``prepare(model, batch) -> batch`` (before the forward) and
  ``__call__(model, batch, outputs) -> {name: unweighted scalar}``.
- ``objective``: what reduces the per-sample classification loss (``train.objective``); ``build(settings,
  model)`` returns the ``cls_reduction`` module of :class:`mtlswin.training.losses.MultitaskLoss`.
- ``post_hoc``: a step run on a trained run folder after training (DFR, the cue probe); ``build(settings,
  run, ...)`` runs it with those settings, whose defaults are the entry point's.

In a config a method is written ``{name: rrr, weight: 10, dilation: 2}``, or as the bare name ``rrr`` for
its defaults; :func:`parse_method` validates it (unknown names and settings keys are errors naming the valid
ones) and :func:`method_dict` writes it back in that form. Each settings dataclass names its method in the
class variable ``name`` and may check its values in ``__post_init__`` (a ``ValueError`` naming the field).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mtlswin.config_loader import closest_hint
from mtlswin.typecheck import check_type

__all__ = [
    "KINDS",
    "MethodEntry",
    "build_method",
    "get_method",
    "method_dict",
    "method_names",
    "parse_method",
    "register_method",
]

KINDS = ("guidance", "objective", "post_hoc")


@dataclass(frozen=True)
class MethodEntry:
    """One registered method: its name, settings dataclass, kind and builder (see the module docstring)."""

    name: str
    settings_cls: type
    kind: str
    build: Callable[..., Any]

    @property
    def keys(self) -> tuple[str, ...]:
        """The settings keys a config may give (besides ``name``)."""
        return tuple(f.name for f in dataclasses.fields(self.settings_cls))


_REGISTRY: dict[str, MethodEntry] = {}


def register_method(name: str, settings_cls: type, kind: str, build: Callable[..., Any]) -> None:
    """Register ``settings_cls`` (a dataclass whose class variable ``name`` is ``name``) as a method of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"method kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not dataclasses.is_dataclass(settings_cls) or getattr(settings_cls, "name", None) != name:
        raise ValueError(f"the settings of method {name!r} must be a dataclass with the class variable name = {name!r}")
    if name in _REGISTRY and _REGISTRY[name].settings_cls is not settings_cls:
        raise ValueError(f"method {name!r} is registered twice")
    _REGISTRY[name] = MethodEntry(name, settings_cls, kind, build)


def method_names(kind: str | None = None) -> tuple[str, ...]:
    """The registered names of ``kind`` (all kinds for None), sorted."""
    return tuple(sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind))


def get_method(name: str, kind: str | None = None, where: str = "method") -> MethodEntry:
    """The entry of ``name``; a ``ValueError`` naming the methods of ``kind`` when it is not one of them."""
    entry = _REGISTRY.get(name)
    if entry is None or (kind is not None and entry.kind != kind):
        valid = method_names(kind)
        raise ValueError(f"{where}: unknown {kind or 'method'} {name!r}{closest_hint(str(name), list(valid))} "
                         f"(valid: {', '.join(valid)})")  # fmt: skip
    return entry


def parse_method(raw: Any, kind: str, where: str) -> Any:
    """The settings of the method written ``raw`` (a name, or a mapping with ``name`` and settings keys).

    ``where`` is the config key (``train.guidance``), used in every error message.
    """
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a method name or a mapping {{name: ..., <settings>}}, got {raw!r}")
    raw = dict(raw)
    if "name" not in raw:
        raise ValueError(f"{where} needs a name (one of {', '.join(method_names(kind))}), got {raw!r}")
    entry = get_method(raw.pop("name"), kind, where)
    hints = typing.get_type_hints(entry.settings_cls)
    for key in raw:
        if key not in entry.keys:
            raise ValueError(f"{where}: method {entry.name!r} has no setting {key!r}{closest_hint(key, list(entry.keys))} "
                             f"(valid: name, {', '.join(entry.keys)})")  # fmt: skip
    values = {key: check_type(f"{where}.{key}", value, hints[key]) for key, value in raw.items()}
    try:
        return entry.settings_cls(**values)
    except ValueError as err:
        raise ValueError(f"{where} ({entry.name}): {err}") from err


def _entry_of(settings: Any) -> MethodEntry:
    entry = _REGISTRY.get(getattr(settings, "name", None))
    if entry is None or not isinstance(settings, entry.settings_cls):
        raise ValueError(f"{settings!r} is not the settings of a registered method")
    return entry


def method_dict(settings: Any) -> dict[str, Any]:
    """``{"name": ..., **settings}``: the config form of a method's settings (read back by :func:`parse_method`)."""
    return {"name": _entry_of(settings).name, **dataclasses.asdict(settings)}


def build_method(settings: Any, *args: Any) -> Any:
    """The method's builder called with its settings: ``build(settings, *args)`` (the kinds' arguments above)."""
    return _entry_of(settings).build(settings, *args)
