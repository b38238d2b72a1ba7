"""Which candidate methods pass the known-answer tests, and which of those tests each family's method must pass.

Three models whose positive logit is known to depend on one region only (built and checked in
tests/explain/test_known_answers.py, which asserts this table against the maps):

- **box**: the logit reads only the features of a box, while the CAM layer's features are nonzero everywhere
  (air included). Pass: at least 0.9 of the map's energy in the box, and no more of it in the air than the air's
  share of the image.
- **gate**: ``seg_gated_swin`` with its gate fixed to a disc: pixels outside it cannot change the logit. Pass:
  less than 0.01 of the energy outside the disc.
- **cue**: the logit reads only a thin ring where two images differ (the cue). Pass: energy on the ring at least
  3 times its share of the image.

The rule of docs/explanations.md, as amended there, makes a method eligible for a family only if it passes the
sanity check on that family's model *and* the known-answer tests of :data:`REQUIRED`: box and cue for every family,
and the gate too for ``seg_gated`` (the only family with a gate).
"""

from __future__ import annotations

__all__ = ["KNOWN_ANSWER_PASSES", "REQUIRED", "passes_known_answers", "required_checks"]

# check -> method -> passes, as measured by tests/explain/test_known_answers.py
KNOWN_ANSWER_PASSES: dict[str, dict[str, bool]] = {
    "box": {"gradcam": False, "hirescam": True, "gradcam++": False, "layercam": True, "eigencam": False,
            "integrated_gradients": True, "input_x_gradient": True},
    "gate": {"gradcam": False, "hirescam": False, "gradcam++": False, "layercam": False, "eigencam": False,
             "integrated_gradients": True, "input_x_gradient": True},
    "cue": {"gradcam": False, "hirescam": True, "gradcam++": False, "layercam": True, "eigencam": False,
            "integrated_gradients": True, "input_x_gradient": True},
}  # fmt: skip
REQUIRED: dict[str, tuple[str, ...]] = {"seg_gated": ("box", "gate", "cue")}  # any other family: box and cue


def required_checks(family: str) -> tuple[str, ...]:
    """The known-answer tests a method must pass to be eligible for ``family``."""
    return REQUIRED.get(family, ("box", "cue"))


def passes_known_answers(family: str, method: str) -> bool:
    """Whether ``method`` passes every known-answer test required for ``family`` (False for an unknown method)."""
    return all(KNOWN_ANSWER_PASSES[check].get(method, False) for check in required_checks(family))
