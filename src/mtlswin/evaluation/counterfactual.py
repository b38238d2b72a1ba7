"""The counterfactual cue test: how much does a prediction move when only the spurious cue changes?

The phantom can write, for a slice, its twin with the cue flipped and everything else identical
(``mtlswin synth --twins``; the manifest's ``twin`` column). A model that learned the shortcut changes
its answer with the cue; one that reads the hematoma does not. Over the slices of a split that have
a twin, with ``p`` the positive-class probability of the slice and ``p'`` that of its twin:

- ``cue_sensitivity = mean |p - p'|`` (0 = blind to the cue);
- ``cue_flip_rate = mean[(p >= t) != (p' >= t)]``: the share of decisions the cue alone flips;

each with a 95% percentile-bootstrap interval that resamples patients (:mod:`mtlswin.stats`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtlswin.data.twins import twin_loader
from mtlswin.stats import bootstrap_ci

__all__ = ["cue_metrics", "twin_loader"]  # twin_loader: re-exported from mtlswin.data.twins


def cue_metrics(table: pd.DataFrame, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Cue sensitivity and flip rate (with CIs) over the rows of ``table`` that have ``prob_twin``."""
    pairs = table.dropna(subset=["prob_twin"]) if "prob_twin" in table else table.iloc[:0]
    out: dict[str, Any] = {"n_twins": len(pairs)}
    if pairs.empty:
        return out
    p, q = pairs["prob"].to_numpy(), pairs["prob_twin"].to_numpy()
    groups = pairs["patient_id"].to_numpy() if "patient_id" in pairs else None
    delta = np.abs(p - q)
    flips = ((p >= threshold) != (q >= threshold)).astype(np.float64)
    for name, values in (("cue_sensitivity", delta), ("cue_flip_rate", flips)):
        est, low, high = bootstrap_ci(np.mean, values, groups=groups, n_resamples=n_boot, seed=seed)
        out[name], out[f"{name}_ci95"] = est, [low, high]
    return out
