"""Methods beyond the plain multitask recipe (docs/methods.md), each a registered part with its own settings.

Guidance terms added to the training loss (``train.guidance``): :mod:`.rrr`, :mod:`.cam_align`; objectives
(``train.objective``): :mod:`.groupdro`. :mod:`.registry` holds them, and the post-hoc steps of
:mod:`mtlswin.posthoc` (DFR, the cue probe). Importing this package registers the training-time methods,
which the config names and the training loop composes.
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
