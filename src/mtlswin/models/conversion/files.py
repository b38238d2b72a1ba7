"""Foreign weight files: read one safely as a flat state dict, and load one into a model by its format.

Files are read with ``torch.load(weights_only=True)`` (tensors and plain containers only, never arbitrary
objects) or as ``.safetensors``; the key mapping is the pure converters' of :mod:`mtlswin.models.conversion.swin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from mtlswin.models.conversion.swin import CONVERTERS, detect_format
from mtlswin.models.load_report import LoadReport

__all__ = ["load_foreign", "read_state_dict"]

_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "model_state")
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Descend through ``{"model": ...}`` / ``{"state_dict": ...}`` wrappers to a flat tensor dict."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{str(path)!r} holds no state dict (found {type(obj).__name__}); save model.state_dict()")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{str(path)!r}: entries that are not tensors: {bad[:10]}; save model.state_dict() only")
    return dict(obj)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A foreign weight file as a flat tensor dict: ``.safetensors``, or ``.pth``/``.pt``/``.bin``/``.ckpt``
    read with ``torch.load(weights_only=True)`` (tensors and plain containers only, never arbitrary objects).

    Wrappers ``{"model": sd}``, ``{"state_dict": sd}`` (official Swin, Lightning) are unwrapped; other
    entries beside the wrapped dict (``epoch``, ``optimizer``) are dropped. Errors name the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no weight file at {str(path)!r}; give an existing .pth/.pt/.bin/.safetensors file")
    suffix = path.suffix.lower()
    if suffix not in _WEIGHT_SUFFIXES:
        raise ValueError(f"weight file {str(path)!r}: unknown suffix {suffix!r}; use one of {_WEIGHT_SUFFIXES}")
    if suffix == ".safetensors":
        return _unwrap(load_file(str(path), device="cpu"), path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors have many types; the message must name the file
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = next((line for line in lines if "Unsupported global" in line), lines[0])  # torch's long text
        raise ValueError(
            f"cannot read {str(path)!r} with torch.load(weights_only=True): {reason} Only plain state dicts of "
            "tensors are accepted (arbitrary pickled objects are never unpickled)."
        ) from err
    return _unwrap(state, path)


def load_foreign(model: nn.Module, path: str | Path, fmt: str | None = None, allow_partial: bool = False) -> LoadReport:
    """Load a foreign checkpoint file into ``model`` with the converter of ``fmt`` (guessed when None)."""
    state = read_state_dict(path)
    fmt = fmt or detect_format(state)
    if fmt not in CONVERTERS:
        raise ValueError(f"unknown checkpoint format {fmt!r}; choose one of {', '.join(CONVERTERS)}")
    return CONVERTERS[fmt](model, state, allow_partial=allow_partial)
