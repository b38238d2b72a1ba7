"""Methods beyond the plain multitask recipe (docs/methods.md), each a registered part with its own settings.

Guidance terms added to the training loss (``train.guidance``): :mod:`.rrr`, :mod:`.cam_align`; objectives
(``train.objective``): :mod:`.groupdro`; post-hoc steps on a trained run folder: :mod:`.dfr`,
:mod:`.cue_probe`. :mod:`.registry` holds them.

Importing this package registers the training-time methods, which the config names and the training loop
composes: they sit below :mod:`mtlswin.config`. The post-hoc steps work on a trained run folder, so they sit
above :mod:`mtlswin.training` and :mod:`mtlswin.runs` and register when their module is imported (by the
pipeline or the CLI): importing them here would make the config import a run folder's reader.
"""

from mtlswin.methods import cam_align, groupdro, rrr
from mtlswin.methods.registry import (
    KINDS,
    MethodEntry,
    build_method,
    get_method,
    method_dict,
    method_names,
    parse_method,
    register_method,
)

__all__ = [
    "KINDS",
    "MethodEntry",
    "build_method",
    "cam_align",
    "get_method",
    "groupdro",
    "method_dict",
    "method_names",
    "parse_method",
    "register_method",
    "rrr",
]
