"""Holm's step-down correction across a family of claims (statsmodels' ``multipletests``).

Holm (1979, Scand J Statist 6:65) controls the family-wise error rate at ``alpha`` under any dependence
between the tests, and rejects everything Bonferroni does and more. NaN p-values (claims without an
interval) are left out of the family and never rejected.
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats.multitest import multipletests

__all__ = ["holm"]


def holm(p_values: np.ndarray | list[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``(rejected, adjusted p)`` of Holm's procedure over the finite ``p_values`` (NaN stays NaN, not rejected)."""
    p = np.asarray(p_values, dtype=np.float64)
    rejected, adjusted = np.zeros(p.shape, bool), np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        rejected[finite], adjusted[finite], _, _ = multipletests(p[finite], alpha=alpha, method="holm")
    return rejected, adjusted
