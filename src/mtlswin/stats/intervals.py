"""Bootstrap confidence intervals, by slice or by patient, and the claims' seed-aware interval.

Slices of one patient are not independent (same anatomy, same scanner, neighbouring levels), so an
interval that resamples slices is too narrow. With ``groups`` (e.g. the patient id of each row) the
bootstrap resamples whole groups with replacement and takes every row of each drawn group (the
cluster bootstrap); without it, rows. The interval is the percentile interval of the statistic over
the resamples where it is defined (a NaN, e.g. the AUC of a one-class resample, is dropped).

:func:`bootstrap_ci` serves one statistic of any arrays; :func:`resample_indices` gives the resamples
themselves, so a caller can score several models on the SAME resampled patients (the paired design of
:mod:`mtlswin.pipeline.claims`). Pure numpy, seeded.

**An interval for a method, not for K trained models** (:func:`seed_interval`). A claim compares two
training recipes; its estimate is the mean over K training seeds of the per-seed paired difference
``d_k`` (row minus reference, trained with seed k, scored on the same test slices). Two sources of noise
move ``d_k``: the training seed (initialisation, data order, augmentation, and in the demo the phantom
draw) and the test patients. A patient bootstrap alone sees only the second; with the demo's three seeds
the first was up to ten times larger. The interval is therefore

    d_mean +/- t_{df, (1+level)/2} * sqrt(s_d^2 / K + v_p)

with ``s_d^2`` the sample variance of the K per-seed differences and ``v_p`` the patient-bootstrap
variance of ``d_mean`` (patients resampled within each test set). When every seed has its own test set
(one phantom draw per seed), ``s_d^2`` already holds the patient noise and adding ``v_p`` counts it twice:
a deliberate floor, so that three seeds that agree by chance cannot shrink the interval below what the
test patients allow. When the seeds share one test set, ``s_d^2`` misses the shared patient noise and
``v_p`` supplies it.

**Degrees of freedom (Welch-Satterthwaite).** The two variance terms are estimated with different
precision: ``s_d^2 / K`` from K seeds (K-1 degrees of freedom), ``v_p`` from the test patients (``df_p``:
the number of test patients minus one per test set, summed over the test sets, as the caller states).
Their sum has approximately

    df = (s_d^2/K + v_p)^2 / ((s_d^2/K)^2 / (K-1) + v_p^2 / df_p)

degrees of freedom (Satterthwaite 1946; Welch 1947). It lies between min(K-1, df_p) and K-1 + df_p: an
interval dominated by the seeds keeps t(K-1); one dominated by the patients is no longer stretched by
t(K-1) = 4.30 at K = 3 for noise that many patients measure well. Without ``patient_df`` the old,
conservative K-1 is kept.

Why not a two-level bootstrap (seeds, then patients)? With K = 3 seeds, a resampled mean of seeds lies
within the range of the three values, and the method's true mean lies outside the range of three
independent draws with probability 2 * (1/2)^3 = 1/4: a seed bootstrap cannot cover more than about 75%
whatever the patients add. Student's t is exact for normal seed noise and widens, as it must, when K is
small (t_{2, .975} = 4.30 against 1.96). The coverage of the interval under seed noise with collapsed
runs and clustered patients, and with the patient term dominating, is checked by simulation in the tests.

The smallest effect an experiment can detect: an interval excludes zero when ``|d_mean|`` exceeds its
half-width, so an effect equal to the half-width is seen half of the time; the minimum detectable
effect at 80% power is ``(t_{df, (1+level)/2} + t_{df, .80}) * se`` (:class:`SeedInterval`.mde).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

__all__ = [
    "SeedInterval",
    "bootstrap_ci",
    "fast_auc",
    "percentile_interval",
    "resample_indices",
    "satterthwaite_df",
    "seed_interval",
    "seed_statistics",
]


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


def percentile_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval of the finite ``values`` (NaN bounds with fewer than two)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class SeedInterval:
    """A seed-aware interval (module docstring): the estimate, bounds, standard error, seeds used, the
    minimum detectable effect at 80% power, the degrees of freedom of its t, and the patient term ``v_p``.
    Bounds, ``se``, ``mde``, ``df`` and ``patient_var`` are NaN with fewer than two seeds."""

    estimate: float
    low: float
    high: float
    se: float
    seeds: int
    mde: float
    df: float = float("nan")
    patient_var: float = float("nan")

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    @property
    def t(self) -> float:
        """The estimate in standard errors (the statistic of the sequential and Holm tests)."""
        return self.estimate / self.se if self.se > 0 else float("nan")

    @property
    def p(self) -> float:
        """Two-sided p-value of ``t`` at ``df`` degrees of freedom (NaN without an interval)."""
        return float(2.0 * student_t.sf(abs(self.t), self.df)) if np.isfinite(self.t * self.df) else float("nan")


def satterthwaite_df(
    seed_var: np.ndarray | float, seeds: np.ndarray | int, patient_var: np.ndarray | float, patient_df: float | None
) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of ``seed_var / seeds + patient_var`` (module docstring).

    ``seed_var``: the sample variance of the per-seed differences (``seeds - 1`` degrees of freedom);
    ``patient_var``: the patient-bootstrap variance of their mean, with ``patient_df`` degrees of freedom
    (None: unknown, and the conservative ``seeds - 1`` is returned). Vectorised over the arrays.
    """
    k = np.asarray(seeds, dtype=np.float64)
    a = np.asarray(seed_var, dtype=np.float64) / k
    b = np.asarray(patient_var, dtype=np.float64)
    if patient_df is None:
        return np.broadcast_to(k - 1.0, np.broadcast(a, b).shape).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a**2 / (k - 1.0) + b**2 / float(patient_df))
    return np.where(a + b > 0, df, k - 1.0)


def seed_statistics(
    per_seed: np.ndarray, patient_var: np.ndarray | float, patient_df: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(estimate, se, df)`` of per-seed differences ``(..., K)`` (no NaN) and the patient variance of their
    mean ``(...)``: the core of :func:`seed_interval`, vectorised for simulations of many experiments."""
    d = np.asarray(per_seed, dtype=np.float64)
    k = d.shape[-1]
    seed_var = d.var(axis=-1, ddof=1)
    se = np.sqrt(seed_var / k + np.asarray(patient_var, dtype=np.float64))
    return d.mean(axis=-1), se, satterthwaite_df(seed_var, k, patient_var, patient_df)


def seed_interval(
    per_seed: Sequence[float] | np.ndarray,
    patient_means: Sequence[float] | np.ndarray,
    level: float = 0.95,
    patient_df: float | None = None,
) -> SeedInterval:
    """``mean(per_seed) +/- t_df * sqrt(var(per_seed) / K + var(patient_means))`` (module docstring).

    ``per_seed``: the K per-seed paired differences on the full test sets (NaN seeds are dropped);
    ``patient_means``: the mean over seeds of the same differences on each patient resample;
    ``patient_df``: the degrees of freedom of the patient term (test patients minus one, summed over the
    test sets); ``df`` is then Welch-Satterthwaite's, without it K - 1.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if patient_df is not None and not patient_df > 0:
        raise ValueError(f"patient_df must be positive, got {patient_df}")
    d = np.asarray(per_seed, dtype=np.float64)
    d = d[np.isfinite(d)]
    k = int(d.size)
    estimate = float(d.mean()) if k else float("nan")
    boot = np.asarray(patient_means, dtype=np.float64)
    boot = boot[np.isfinite(boot)]
    if k < 2:
        return SeedInterval(estimate, float("nan"), float("nan"), float("nan"), k, float("nan"))
    v_patients = float(boot.var(ddof=1)) if boot.size > 1 else 0.0
    _, se_arr, df_arr = seed_statistics(d, v_patients, patient_df)
    se, df = float(se_arr), float(df_arr)
    t_crit = float(student_t.ppf((1.0 + level) / 2.0, df))
    mde = (t_crit + float(student_t.ppf(0.80, df))) * se
    return SeedInterval(estimate, estimate - t_crit * se, estimate + t_crit * se, se, k, mde, df, v_patients)


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
    low, high = percentile_interval(values, level)
    return estimate, low, high
