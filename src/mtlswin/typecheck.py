"""Check a config value against a type annotation, with an error that names the key, the value and the type.

``check_type("train.epochs", "abc", int)`` raises ``ValueError("train.epochs must be int, got 'abc' (str)")``.
Understood: ``Any``, ``None``, ``X | Y`` / ``Optional``, ``Literal[...]``, ``bool``, ``int``, ``float`` (an
``int`` or a numeric string such as YAML's ``1e-4`` is accepted and returned as ``float``), ``str``,
``list[X]``, ``tuple[X, ...]`` (a YAML list is accepted), ``dict[K, V]``. Any other class (a Lightning
``Callback``, ``Strategy`` ...) accepts instances of itself only.
"""

from __future__ import annotations

import types
import typing
from typing import Any

__all__ = ["check_type", "type_name"]


def type_name(annotation: Any) -> str:
    """``int | None`` -> ``"int or None"``; ``tuple[int, ...]`` -> ``"list of int"``; readable, for messages."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None) or annotation is None:
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(type_name(a) for a in args))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (list, tuple) or annotation in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        return f"list of {type_name(inner[0])}" if inner else "list"
    if origin is dict or annotation is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}" if args else "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _convert(value: Any, annotation: Any) -> tuple[bool, Any]:
    """``(ok, value)``: whether ``value`` fits ``annotation``, and the value (a numeric string made float)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True, value
    if annotation is type(None) or annotation is None:
        return value is None, value
    if origin in (typing.Union, types.UnionType):
        for arg in sorted(args, key=lambda a: a is float):  # exact types before the float coercion
            ok, out = _convert(value, arg)
            if ok:
                return True, out
        return False, value
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args), value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        inner = next((a for a in args if a is not Ellipsis), Any)
        items = [_convert(v, inner) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        return True, type(value)(v for _, v in items)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return False, value
        key_t, val_t = args or (Any, Any)
        items = [(_convert(k, key_t), _convert(v, val_t)) for k, v in value.items()]
        if not all(k[0] and v[0] for k, v in items):
            return False, value
        return True, {k[1]: v[1] for k, v in items}
    if isinstance(annotation, type):
        return isinstance(value, annotation), value
    return True, value  # an annotation this checker does not read: leave it to the code that uses the value


def check_type(key: str, value: Any, annotation: Any) -> Any:
    """``value`` if it fits ``annotation`` (a numeric string converted for a ``float``), else a ``ValueError``."""
    ok, out = _convert(value, annotation)
    if not ok:
        raise ValueError(f"{key} must be {type_name(annotation)}, got {value!r} ({type(value).__name__})")
    return out
