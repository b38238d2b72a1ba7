"""How many training seeds a claim needs: power of the one-sample t on the per-seed paired differences.

A claim's test is a one-sample t on the K per-seed differences ``d_k`` (:func:`mtlswin.stats.seed_interval`),
so its power is statsmodels' :class:`~statsmodels.stats.power.TTestPower` (two-sided, alpha .05, power .80 by
default) at the effect size ``delta / sd_eff``. What ``sd_eff`` holds depends on the design:

- **a draw per seed** ("data sets like it"): each seed's difference carries its own test patients, and the
  interval adds the patient variance of the mean, ``v1 / K`` (``v1``: one test set's patient variance of a
  per-seed difference), so ``se^2 = (sd^2 + v1) / K``: effect size ``delta / sqrt(sd^2 + v1)``;
- **one shared draw** ("this data set"): the seeds share the test patients, so their term does not shrink
  as seeds are added, ``se^2 = sd^2 / K + v1``: effect size ``delta / sqrt(sd^2 + K * v1)`` at K seeds,
  and no number of seeds reaches the power once ``|delta| / sqrt(v1)`` is below ``z_{1-alpha/2} + z_{power}``
  (only a larger test set helps then).

TTestPower takes K - 1 degrees of freedom; the interval's Welch-Satterthwaite df is at least that, so the
seeds it gives are, if anything, a few too many. The upper confidence bound of the sd (:func:`sd_upper`)
is the chi-square one: with three seeds the sd is poorly known (its 80% upper bound is 2.1 times it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
from scipy.stats import chi2, norm
from statsmodels.stats.power import TTestPower
from statsmodels.tools.sm_exceptions import ConvergenceWarning

__all__ = ["sd_upper", "seeds_needed", "t_power"]

ALPHA, POWER = 0.05, 0.80
MAX_SEEDS = 10**8  # beyond this, "never" for practical purposes; the search stops here


def sd_upper(sd: float, seeds: int, confidence: float = 0.80) -> float:
    """One-sided upper ``confidence`` bound of a normal sd from ``seeds`` values: ``sd * sqrt((K-1) /
    chi2_{1-confidence}(K-1))`` (NaN with fewer than two)."""
    if seeds < 2 or not np.isfinite(sd):
        return float("nan")
    return float(sd * math.sqrt((seeds - 1) / chi2.ppf(1.0 - confidence, seeds - 1)))


def t_power(
    effect: float, sd: float, seeds: int, patient_var: float = 0.0, shared: bool = False, alpha: float = ALPHA
) -> float:
    """Power of the two-sided one-sample t at ``seeds`` seeds for a true difference ``effect`` (module docstring
    for ``patient_var`` and ``shared``)."""
    var = sd**2 + (seeds if shared else 1) * patient_var
    if seeds < 2 or not var > 0:
        return float("nan")
    return float(TTestPower().power(effect_size=abs(effect) / math.sqrt(var), nobs=seeds, alpha=alpha,
                                    alternative="two-sided"))  # fmt: skip


def seeds_needed(
    effect: float,
    sd: float,
    patient_var: float = 0.0,
    shared: bool = False,
    alpha: float = ALPHA,
    power: float = POWER,
) -> float:
    """The smallest number of seeds (at least 2) whose t test has ``power`` for a true difference ``effect``;
    ``inf`` when none has (a zero effect, or a shared test set whose patients alone leave too much noise);
    NaN when ``effect`` or ``sd`` is unknown."""
    if not (np.isfinite(effect) and np.isfinite(sd) and np.isfinite(patient_var)):
        return float("nan")
    if effect == 0 or (shared and patient_var > 0 and norm.sf(norm.isf(alpha / 2) - abs(effect) / math.sqrt(
            patient_var)) <= power):  # fmt: skip
        return math.inf  # the limit of the power as seeds grow (the patients' term alone) is below the target
    if t_power(effect, sd, 2, patient_var, shared, alpha) >= power:
        return 2.0
    if not shared:
        var = sd**2 + patient_var
        if var == 0:
            return 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a failed root finder returns NaN: bisect below
            n = TTestPower().solve_power(effect_size=abs(effect) / math.sqrt(var), nobs=None, alpha=alpha,
                                         power=power, alternative="two-sided")  # fmt: skip
        if np.isfinite(n):
            return float(max(2, math.ceil(float(n) - 1e-9)))
        # statsmodels' root finder can fail for a large effect whose power at 2 seeds is still short (it starts
        # at 10 seeds): the power is monotone in the seeds, so bisect on it instead
    return _bisect_seeds(lambda k: t_power(effect, sd, k, patient_var, shared, alpha) >= power)


def _bisect_seeds(enough: Callable[[int], bool]) -> float:
    """The smallest seeds >= 2 with ``enough(seeds)`` (monotone), ``inf`` beyond :data:`MAX_SEEDS`."""
    low, high = 2, 4
    while not enough(high):
        low, high = high, high * 2
        if high > MAX_SEEDS:
            return math.inf
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return float(high)
