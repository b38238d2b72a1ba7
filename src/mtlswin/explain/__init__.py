"""Explainability: Grad-CAM maps for every classifier and a quantitative spurious-correlation audit.

- :mod:`~mtlswin.explain.targets`: the Grad-CAM target layers and token reshape each model names itself;
- :mod:`~mtlswin.explain.gradcam`: :func:`compute_cam` (pytorch-grad-cam) -> ``(B, H, W)`` in [0, 1];
- :mod:`~mtlswin.explain.audit`: energy inside the hematoma mask, pointing game, chance level, CIs;
- :mod:`~mtlswin.explain.collect`: :func:`audit_runs` over run folders (table + grid figure);
- :mod:`~mtlswin.explain.files`: maps of image files (``mtlswin gradcam``);
- :mod:`~mtlswin.explain.figures`: overlays/grids (runs are opened with :class:`mtlswin.runs.Run`).
"""

from mtlswin.explain.audit import slice_scores, summarise
from mtlswin.explain.gradcam import CAM_METHODS, compute_cam
from mtlswin.explain.targets import cam_spec

__all__ = ["CAM_METHODS", "cam_spec", "compute_cam", "slice_scores", "summarise"]
