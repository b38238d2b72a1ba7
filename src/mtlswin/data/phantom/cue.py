"""The spurious cue: brain atrophy correlated with the hypodensity label in some hospitals.

Per slice, in a correlated hospital::

    cue = label                with probability s
    cue ~ Bernoulli(q)         otherwise (q = the hospital's hypodensity prevalence so far,
                               the configured one for its first 20 slices)

so ``P(cue=1) = s p + (1-s) q`` and ``cov(cue, label) = s p (1-p)``: when the realised prevalence
``p`` equals ``q`` the phi (Pearson) correlation between cue and label is exactly ``s``. In the
other hospitals ``cue ~ Bernoulli(q)`` independently of the label. A slice with ``cue = 1`` is
rendered atrophic (enlarged ventricles, wider sulci, subarachnoid space and fissure).

The cue is drawn per slice (not per patient) so its slice-level correlation is controllable; so
the atrophy of one patient can change between adjacent slices (a known synthetic artefact).
"""

from __future__ import annotations

import numpy as np

ATROPHY_OF_CUE = 1.0  # atrophy level of a cue-positive slice (0 for cue-negative)


def draw_cue(rng: np.random.Generator, label: int, strength: float, prevalence: float, correlated: bool) -> int:
    """One slice's cue (0/1); see the module docstring for the formula."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"spurious strength {strength} is outside [0, 1]; pass e.g. --spurious 0.9")
    if correlated and rng.random() < strength:
        return int(label)
    return int(rng.random() < prevalence)


def phi(cue: np.ndarray, label: np.ndarray) -> float:
    """Phi (Pearson) correlation of two 0/1 arrays; 0.0 when either is constant."""
    cue, label = np.asarray(cue, float), np.asarray(label, float)
    if cue.std() == 0 or label.std() == 0:
        return 0.0
    return float(np.corrcoef(cue, label)[0, 1])
