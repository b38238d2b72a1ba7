"""Bootstrap confidence intervals, by slice or by patient: the one resampling routine of the project.

Slices of one patient are not independent (same anatomy, same scanner, neighbouring levels), so an
interval that resamples slices is too narrow. With ``groups`` (e.g. the patient id of each row) the
bootstrap resamples whole groups with replacement and takes every row of each drawn group (the
cluster bootstrap); without it, rows. The interval is the percentile interval of the statistic over
the resamples where it is defined (a NaN, e.g. the AUC of a one-class resample, is dropped).

:func:`bootstrap_ci` serves one statistic of any arrays; :func:`resample_indices` gives the resamples
themselves, so a caller can score several models on the SAME resampled patients (the paired design of
:mod:`mtlswin.pipeline.claims`). Pure numpy, seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

__all__ = ["bootstrap_ci", "fast_auc", "resample_indices"]


def fast_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties get half credit, as scikit-learn's); NaN for one class."""
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def resample_indices(n: int, groups: Sequence | np.ndarray | None, n_resamples: int, seed: int = 0) -> list[np.ndarray]:
    """``n_resamples`` arrays of row indices: rows drawn with replacement, or whole groups when ``groups``."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return [rng.integers(0, n, n) for _ in range(n_resamples)]
    members = _group_members(groups, n)
    k = len(members)
    out = []
    for _ in range(n_resamples):
        drawn = rng.integers(0, k, k)
        out.append(np.concatenate([members[g] for g in drawn]))
    return out


def _group_members(groups: Sequence | np.ndarray, n: int) -> list[np.ndarray]:
    """Row indices of each group, groups in sorted order."""
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} rows")
    _, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def _interval(values: list[float], level: float) -> tuple[float, float]:
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if finite.size < 2:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: np.ndarray,
    groups: Sequence | np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: ``statistic(*arrays)`` and its percentile-bootstrap interval.

    ``arrays`` share their first dimension (rows); every resample indexes all of them alike. With
    ``groups`` whole groups are resampled (see the module docstring). Bounds are NaN when fewer than
    two resamples give a finite value; a statistic that never varies gives ``low = high = estimate``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not arrays:
        raise ValueError("give at least one array to resample")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays differ in length: {[len(a) for a in arrays]}")
    estimate = float(statistic(*arrays)) if n else float("nan")
    if n == 0:
        return estimate, float("nan"), float("nan")
    values = [statistic(*(a[idx] for a in arrays)) for idx in resample_indices(n, groups, n_resamples, seed)]
    low, high = _interval(values, level)
    return estimate, low, high
