"""Each model family's default attribution method and layer, as chosen by the rule of docs/explanations.md.

The rule (fixed before it was measured, amended once before any claim was read: docs/explanations.md): among the
candidate methods that pass the parameter-randomisation sanity check on the family's model and the known-answer
tests the family requires (:mod:`mtlswin.explain.known_answers`), the one with the best ROAD faithfulness on the
validation split of the demo phantom's draw 0. ``mtlswin gradcam``, ``mtlswin audit`` and the reproduce audit use
:func:`default_method` unless a method is given. The selection's tables are in docs/explanations/ (``mtlswin
explain-select``). A family in :data:`NOT_EVIDENCE` had no eligible method: its maps are drawn from the most faithful
method but are not evidence (the audit does not draw them and the claims on them are inconclusive).
"""

from __future__ import annotations

from torch import nn

__all__ = ["DEFAULT_METHODS", "FAMILY_OF", "NOT_CHOSEN", "NOT_EVIDENCE", "default_method", "default_stage",
           "family_of", "not_evidence"]  # fmt: skip

# model registry name -> family of docs/explanations.md (the alternatives' Swin classifiers are "swin" models)
FAMILY_OF = {
    "swin": "swin",
    "swin_tiny": "swin",
    "mtl_swin_unet": "mtl",
    "joint_swin": "joint",
    "joint_swin_tiny": "joint",
    "seg_gated_swin": "seg_gated",
    "resnet152": "resnet",
    "joint_learning": "joint_learning",
}
# family -> method, as chosen by the rule (docs/explanations/chosen.csv)
DEFAULT_METHODS = {"swin": "hirescam", "mtl": "hirescam", "joint": "layercam", "seg_gated": "gradcam"}
# families with no eligible method -> why (docs/explanations/chosen.csv)
NOT_EVIDENCE = {
    "seg_gated": "no candidate passes both the sanity check and the gate known-answer test (CAM methods light the "
    "gated-out tokens; input attributions keep the gated image's structure whatever the weights)"
}
NOT_CHOSEN = {"resnet": "gradcam", "joint_learning": "gradcam"}  # no demo run: not chosen by the rule
AUDIT_STAGE = 0  # the finest Swin stage: the bottleneck map is too coarse to outline a hematoma at demo size


def family_of(model: nn.Module | str) -> str | None:
    """The family of a model (or of a registry name); None for a model the families do not name."""
    name = model if isinstance(model, str) else getattr(model, "model_name", None)
    return FAMILY_OF.get(str(name)) if name is not None else None


def default_method(model: nn.Module | str) -> str:
    """The family's chosen method (``gradcam`` for a family the rule did not choose for)."""
    family = family_of(model)
    return DEFAULT_METHODS.get(family, NOT_CHOSEN.get(family, "gradcam")) if family else "gradcam"


def not_evidence(model: nn.Module | str) -> str | None:
    """Why the maps of this model's family are not evidence (None: they can be, if the run's sanity check passes)."""
    family = family_of(model)
    return NOT_EVIDENCE.get(family) if family else None


def default_stage(model: nn.Module) -> int | None:
    """The layer CAM methods map: the finest Swin stage for Swin models, the model's own target layer (None)
    for the others."""
    return AUDIT_STAGE if hasattr(getattr(model, "encoder", None), "cam_layer") else None
