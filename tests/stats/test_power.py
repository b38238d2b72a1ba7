"""Seeds a claim needs: statsmodels' TTestPower, checked by hand against scipy's noncentral t; the sd's bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2, nct
from scipy.stats import t as student_t
from statsmodels.stats.power import TTestPower

from mtlswin.stats import sd_upper, seeds_needed, t_power


def _power_by_hand(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Two-sided one-sample t: P(|T| > t_{n-1, 1-alpha/2}) with T noncentral t, nc = effect / sd * sqrt(n)."""
    crit = student_t.isf(alpha / 2, n - 1)
    nc = effect / sd * math.sqrt(n)
    return float(nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc))


def test_the_issues_numbers_at_sd_07():
    # issue 37: at sd .07, 80% power for +.016 needs about 150 seeds per row; for +.027, about 50
    assert seeds_needed(0.016, 0.07) == 153
    assert seeds_needed(0.027, 0.07) == 55
    assert seeds_needed(-0.027, 0.07) == 55  # two-sided: the sign does not matter


def test_seeds_needed_equals_statsmodels_and_the_noncentral_t_by_hand():
    for effect, sd, var in ((0.016, 0.047, 0.024**2), (0.05, 0.07, 0.0), (0.1, 0.05, 0.001)):
        n = seeds_needed(effect, sd, var)
        es = effect / math.sqrt(sd**2 + var)
        solved = TTestPower().solve_power(effect_size=es, alpha=0.05, power=0.8, alternative="two-sided")
        assert n == math.ceil(solved)
        # the smallest n with power >= .8: n reaches it, n - 1 does not (scipy's noncentral t, by hand)
        assert _power_by_hand(effect, math.sqrt(sd**2 + var), int(n)) >= 0.80
        assert _power_by_hand(effect, math.sqrt(sd**2 + var), int(n) - 1) < 0.80
        assert t_power(effect, sd, int(n), var) == pytest.approx(_power_by_hand(effect, math.sqrt(sd**2 + var), int(n)))


def test_a_shared_test_set_puts_a_floor_under_the_noise():
    # the patients' term does not shrink with seeds: .016 against a patient sd of .024 is never reached
    assert seeds_needed(0.016, 0.047, 0.024**2, shared=True) == math.inf
    # a small patient term: finite, more than with a draw per seed, and the smallest n reaching the power
    n = seeds_needed(0.05, 0.07, 0.005**2, shared=True)
    assert seeds_needed(0.05, 0.07, 0.005**2) < n < math.inf
    assert t_power(0.05, 0.07, int(n), 0.005**2, shared=True) >= 0.8 > t_power(0.05, 0.07, int(n) - 1, 0.005**2, True)
    # by hand: at n seeds the se is sqrt(sd^2 / n + v1), the noncentral t's nc = effect / se
    se = math.sqrt(0.07**2 / n + 0.005**2)
    crit = student_t.isf(0.025, n - 1)
    assert t_power(0.05, 0.07, int(n), 0.005**2, True) == pytest.approx(
        nct.sf(crit, n - 1, 0.05 / se) + nct.cdf(-crit, n - 1, 0.05 / se)
    )


def test_degenerate_inputs():
    assert seeds_needed(0.0, 0.07) == math.inf
    assert math.isnan(seeds_needed(float("nan"), 0.07)) and math.isnan(seeds_needed(0.02, float("nan")))
    assert seeds_needed(1.0, 0.01) == 2  # a huge effect: the fewest seeds that give an interval


def test_sd_upper_is_the_chi_square_bound():
    assert sd_upper(0.07, 3) == pytest.approx(0.07 * math.sqrt(2 / chi2.ppf(0.2, 2)))
    assert sd_upper(0.07, 3) == pytest.approx(0.1482, abs=1e-4)  # 2.12 times the sd with three seeds
    assert 0.07 < sd_upper(0.07, 30) < sd_upper(0.07, 3)
    assert math.isnan(sd_upper(0.07, 1))
    # it is an 80% upper bound: it exceeds the true sd in 80% of normal samples of 3
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 1.0, (20000, 3)).std(axis=1, ddof=1)
    assert np.mean([sd_upper(s, 3) >= 1.0 for s in samples]) == pytest.approx(0.80, abs=0.01)


def test_a_large_effect_gets_its_seeds_where_statsmodels_root_finder_fails() -> None:
    """Joint-Swin's cue energy on the demo (estimate -.342, sd .0555, patient sd .0264): statsmodels' solver starts
    at 10 seeds and returns NaN; the bisection on the power gives the smallest seeds reaching 80%."""
    import warnings

    n = seeds_needed(-0.342, 0.0555, 0.0264**2)
    assert n == 3
    assert t_power(-0.342, 0.0555, 3, 0.0264**2) >= 0.8
    # two seeds, by hand with scipy's noncentral t (statsmodels gives NaN there): far short of 80%
    from scipy.stats import nct
    from scipy.stats import t as student_t

    nc = 0.342 / (0.0555**2 + 0.0264**2) ** 0.5 * 2**0.5
    crit = student_t.isf(0.025, 1)
    assert nct.sf(crit, 1, nc) < 0.5  # .463; the lower tail is negligible (and NaN in scipy this far out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning leaks to the user
        assert seeds_needed(-0.342, 0.0555, 0.0264**2) == 3
