"""Initialise a built model from weight files: the ``pretrained`` and ``frozen_encoder`` config fields.

``pretrained`` is None, ``"timm"`` (ImageNet Swin through :mod:`mtlswin.models.conversion.timm_hub`), our
checkpoint of a whole model, an encoder checkpoint of ``mtlswin pretrain`` (:func:`load_pretrained_encoder`)
or a foreign file (converted by :func:`mtlswin.models.conversion.files.load_foreign`). ``frozen_encoder``
fills Joint-Swin's frozen encoder from a segmentation checkpoint (:func:`load_encoder_weights`). Our
formats are in :mod:`mtlswin.models.checkpoint`, the key mapping of foreign ones in
:mod:`mtlswin.models.conversion`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from mtlswin.models.checkpoint import is_encoder_checkpoint, read_checkpoint, read_encoder_checkpoint
from mtlswin.models.conversion import timm_hub
from mtlswin.models.conversion.files import load_foreign, read_state_dict
from mtlswin.models.conversion.swin import check_shapes, from_swin_imagenet, map_encoder_state, strip_prefixes
from mtlswin.models.encoder import SwinEncoder
from mtlswin.models.load_report import LoadReport
from mtlswin.models.registry import models_with

__all__ = ["ENCODER_ATTRS", "apply_pretrained", "load_encoder_weights", "load_pretrained_encoder"]

log = logging.getLogger(__name__)
# Attributes under which the Swin families keep their SwinEncoder(s); an encoder checkpoint fills every one.
ENCODER_ATTRS = ("encoder", "frozen_encoder")
# Sizes an encoder checkpoint must share with the model it initialises (img_size may differ: no weight depends on it).
_STRUCTURE = ("patch_size", "window_size", "embed_dim", "depths", "num_heads", "mlp_ratio", "qkv_bias")


def apply_pretrained(model: nn.Module, config: Any) -> nn.Module:
    """Initialise ``model`` from ``config.pretrained``: None (nothing), ``"timm"`` or a local file; returns ``model``.

    A local file is our checkpoint (``.safetensors``, loaded whole and strictly) or a foreign one,
    loaded with the converter its keys call for. ``"timm"`` downloads ImageNet Swin weights through
    :func:`mtlswin.models.conversion.timm_hub.timm_pretrained_state_dict`, which fails at once when offline.
    """
    source = getattr(config, "pretrained", None)
    if source is None:
        return model
    if source == "timm":
        name = timm_hub.timm_name_for(config)
        from_swin_imagenet(model, timm_hub.timm_pretrained_state_dict(name), source=f"timm:{name}")
        return model
    path = Path(source)
    if not path.exists():
        raise ValueError(f"pretrained file {source!r} does not exist; give an existing checkpoint path, 'timm' or None")
    if is_encoder_checkpoint(path):
        load_pretrained_encoder(model, path, config)
    elif path.suffix == ".safetensors" or path.is_dir():
        state, _ = read_checkpoint(path)
        model.load_state_dict(state, strict=True)
    else:
        load_foreign(model, path)
    return model


def _check_encoder_sizes(saved: dict, config: Any, path: Path) -> None:
    differ = [
        f"{k}: checkpoint {saved[k]!r} vs model {getattr(config, k)!r}"
        for k in _STRUCTURE
        if k in saved and hasattr(config, k) and _plain(saved[k]) != _plain(getattr(config, k))
    ]
    if differ:
        fix = " ".join(f"--set model.{k}={_plain(saved[k])}" for k in _STRUCTURE if k in saved)
        raise ValueError(f"encoder checkpoint {str(path)!r} does not fit this model ({'; '.join(differ)}); build the "
                         f"model with the checkpoint's sizes: {fix}")  # fmt: skip


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def load_pretrained_encoder(model: nn.Module, path: str | Path, config: Any = None) -> LoadReport:
    """Load an encoder checkpoint of ``mtlswin pretrain`` into every Swin encoder of ``model``; the report.

    Every ``SwinEncoder`` the model has (``model.encoder``; ``model.frozen_encoder`` too for ``joint_swin``)
    gets the same weights, strictly: a missing or unexpected encoder key or a shape mismatch raises. The
    model's other weights (decoders, heads) are not in the file and are listed in ``report.kept_init``
    (left at their initialisation). The report is also kept as ``model.pretrained_report`` and logged.
    The input standardisation the encoder was pretrained with is in the file; a model built with another
    one gets a warning naming the values (``data.normalize: [mean, std]`` reproduces them).
    """
    path = Path(path)
    state, meta = read_encoder_checkpoint(path)
    encoders = {name: m for name in ENCODER_ATTRS if isinstance(m := getattr(model, name, None), SwinEncoder)}
    if not encoders:
        raise ValueError(
            f"{str(path)!r} is a Swin encoder checkpoint; {type(model).__name__} has no Swin encoder. Use it with "
            f"one of: {', '.join(models_with('simmim_pretrain'))}"
        )
    saved = meta["config"]
    if config is not None:
        _check_encoder_sizes(saved, config, path)
    report = LoadReport(f"{path} (Swin encoder, {meta['info'].get('method', 'pretrained')})")
    own = {name: enc.state_dict() for name, enc in encoders.items()}
    for name, keys in own.items():
        check_shapes(state, keys, "encoder")
        report.missing += [f"{name}.{k}" for k in keys if k not in state]
        report.loaded += [f"{name}.{k}" for k in keys if k in state]
    report.unexpected = [k for k in state if not all(k in keys for keys in own.values())]
    report.used = [k for k in state if k not in report.unexpected]
    prefixes = tuple(f"{name}." for name in encoders)
    report.kept_init = [k for k in model.state_dict() if not k.startswith(prefixes)]
    report.check(allow_partial=False)
    for enc in encoders.values():
        enc.load_state_dict(state, strict=True)
    model.pretrained_report = report
    log.info("%s\nkept at init (not in an encoder checkpoint): decoders and heads", report.summary())
    mean, std = float(saved.get("input_mean", 0.0)), float(saved.get("input_std", 1.0))
    if config is not None and (abs(mean - config.input_mean) > 0.05 or not 0.8 < std / config.input_std < 1.25):
        warnings.warn(
            f"the encoder of {path} was pretrained on input standardised with mean {mean:g}, std {std:g}; this model "
            f"uses mean {config.input_mean:g}, std {config.input_std:g}. To feed it what it was pretrained on, "
            f"set data.normalize: [{mean:g}, {std:g}] (or model.input_mean / model.input_std)",
            stacklevel=2,
        )
    return report


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> LoadReport:
    """Load a ``SwinEncoder`` from the encoder part of a segmentation checkpoint; any key mismatch raises.

    ``path``: our checkpoint (``.safetensors`` or a run folder holding ``model.safetensors``) of a
    model with an ``encoder`` (swin_unet, mtl_swin_unet, ...), or an authors' Swin-Unet / MTL-Swin-Unet
    ``.pth``. Decoder and head weights in the file are listed as ignored.
    """
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        state, meta = read_checkpoint(path)
        report = LoadReport(f"{path} ({meta.get('model', '?')})")
        mapped = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        report.ignored = {k: "not part of the encoder" for k in state if not k.startswith("encoder.")}
        report.used = [k for k in state if k.startswith("encoder.")]
    else:
        src = strip_prefixes(read_state_dict(path), "module.", "swin_unet.")
        report = LoadReport(f"{path} (Swin-Unet layout)")
        enc = {k: v for k, v in src.items() if k.startswith(("patch_embed.", "layers.", "norm."))}
        mapped, ignored, extra, unexpected = map_encoder_state(enc, encoder)
        report.ignored = {**ignored, **{k: "not part of the encoder" for k in src if k not in enc}}
        report.unexpected = extra + unexpected
        report.used = [k for k in enc if k not in ignored and k not in extra and k not in unexpected]
    own = encoder.state_dict()
    check_shapes(mapped, own, "encoder")
    report.unexpected += [k for k in mapped if k not in own]
    report.missing = [k for k in own if k not in mapped]
    report.loaded = [k for k in mapped if k in own]
    report.check(allow_partial=False)
    encoder.load_state_dict(mapped, strict=True)
    return report
