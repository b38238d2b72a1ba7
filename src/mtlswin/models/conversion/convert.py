"""``mtlswin convert``: a foreign checkpoint file -> our model (options read off the file) -> our checkpoint.

Sizes and classes are inferred from the file (:func:`inferred_options`), the model is built by the factory,
the weights go through the converter of the format (:data:`mtlswin.models.conversion.swin.CONVERTERS`) and
the model is saved in our format, which :func:`mtlswin.models.factory.load_model` rebuilds alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from mtlswin.models.checkpoint import save_model
from mtlswin.models.configs import MTL_SIZES
from mtlswin.models.conversion.files import read_state_dict
from mtlswin.models.conversion.swin import CONVERTERS, infer_swin_unet_config, strip_prefixes
from mtlswin.models.factory import create_model
from mtlswin.models.load_report import LoadReport
from mtlswin.models.registry import get_entry

__all__ = ["DEFAULT_MODEL", "convert_file", "inferred_options"]

DEFAULT_MODEL = {
    "swin-imagenet": "swin",
    "authors-mtl": "mtl_swin_unet",
    "authors-joint": "joint_swin",
    "swin-unet": "swin_unet",
}


def inferred_options(fmt: str, state: dict, model_name: str) -> dict:
    """Model options read off a foreign state dict (sizes, classes), restricted to the fields of ``model_name``.

    Nothing is inferred for ``swin-imagenet``: ImageNet weights initialise a model of the paper's sizes
    (Swin-T weights into depths 2-2-2-2 as Swin-Unet does), so the model's own defaults apply.
    """
    if fmt == "swin-imagenet":
        return {}
    prefix = "swin_unet."
    options = infer_swin_unet_config(state, prefix)
    if fmt == "authors-joint":
        options.pop("n_seg_classes", None)
        head = strip_prefixes(state, "module.").get("head_cls.weight")
        if head is not None:
            options["n_classes"] = int(head.shape[0])
    fields = {f.name for f in dataclasses.fields(get_entry(model_name).config_cls)}
    if "size" in fields and tuple(options.get("depths", ())) == MTL_SIZES["tiny"]:
        options["size"] = "tiny"
    return {k: v for k, v in options.items() if k in fields}


def convert_file(
    fmt: str,
    src: str | Path,
    out: str | Path,
    model_name: str | None = None,
    overrides: dict | None = None,
    allow_partial: bool = False,
) -> tuple[nn.Module, LoadReport]:
    """Read a foreign checkpoint, build our model (options inferred from the file, then ``overrides``),
    convert the weights and save our checkpoint to ``out``. Returns ``(model, report)``."""
    if fmt not in CONVERTERS:
        raise ValueError(f"unknown checkpoint format {fmt!r}; choose one of {', '.join(CONVERTERS)}")
    state = read_state_dict(src)
    name = model_name or DEFAULT_MODEL[fmt]
    options = {**inferred_options(fmt, state, name), **(overrides or {})}
    model = create_model(name, **options)
    report = CONVERTERS[fmt](model, state, allow_partial=allow_partial)
    save_model(model, out)
    return model, report
