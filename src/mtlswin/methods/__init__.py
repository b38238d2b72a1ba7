"""Methods beyond the plain multitask recipe (docs/methods.md), each a registered part with its own settings.

Guidance terms added to the training loss (``train.guidance``): :mod:`.rrr`, :mod:`.cam_align`; objectives
(``train.objective``): :mod:`.groupdro`; post-hoc steps on a trained run folder: :mod:`.dfr`,
:mod:`.cue_probe`. :mod:`.registry` holds them; importing this package registers every one.
"""

from mtlswin.methods import cam_align, cue_probe, dfr, groupdro, rrr
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
    "cue_probe",
    "dfr",
    "get_method",
    "groupdro",
    "method_dict",
    "method_names",
    "parse_method",
    "register_method",
    "rrr",
]
