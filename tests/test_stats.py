"""The one bootstrap of the project (known answers, seeding, resampling by patient) and the seed-aware interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t
from sklearn.metrics import roc_auc_score

from mtlswin.stats import (
    bootstrap_ci,
    fast_auc,
    percentile_interval,
    resample_indices,
    satterthwaite_df,
    seed_interval,
    seed_statistics,
)


def test_fast_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) + 0.3 * y, 1)  # many ties
    assert fast_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(fast_auc(np.ones(5), np.arange(5)))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    a = bootstrap_ci(fast_auc, y, p, n_resamples=300, seed=3)
    assert a == bootstrap_ci(fast_auc, y, p, n_resamples=300, seed=3)
    assert a[0] == pytest.approx(fast_auc(y, p)) and a[1] < a[0] < a[2]


def test_mean_of_two_values_has_the_known_percentiles():
    # Resampled means of [0, 1] are 0, .5, 1 with probabilities 1/4, 1/2, 1/4.
    assert bootstrap_ci(np.mean, np.array([0.0, 1.0])) == (0.5, 0.0, 1.0)
    assert bootstrap_ci(np.mean, np.array([0.3, 0.3, 0.3])) == pytest.approx((0.3, 0.3, 0.3))


def test_patient_resampling_keeps_every_slice_of_a_drawn_patient():
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    for idx in resample_indices(6, groups, 50, seed=0):
        drawn = groups[idx]
        for g in set(drawn):
            assert (drawn == g).sum() % (groups == g).sum() == 0  # whole patients only


def test_patient_resampling_widens_the_interval_of_clustered_data():
    # 10 patients x 30 identical slices: the slice bootstrap pretends there are 300 independent values.
    rng = np.random.default_rng(2)
    per_patient = rng.random(10)
    values = np.repeat(per_patient, 30)
    patients = np.repeat(np.arange(10), 30)
    _, lo_p, hi_p = bootstrap_ci(np.mean, values, groups=patients, n_resamples=1000)
    _, lo_s, hi_s = bootstrap_ci(np.mean, values, n_resamples=1000)
    assert (hi_p - lo_p) > 3 * (hi_s - lo_s)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="length"):
        bootstrap_ci(np.mean, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="groups"):
        resample_indices(3, ["a", "b"], 5)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(np.mean, np.zeros(3), level=1.5)


def test_seed_interval_has_the_known_t_formula():
    # d = 1, 2, 3: mean 2, var 1; patient means with variance 0.25 -> se = sqrt(1/3 + 0.25)
    patient_means = np.array([1.5, 2.5] * 50)
    got = seed_interval([1.0, 2.0, 3.0], patient_means)
    se = np.sqrt(1 / 3 + patient_means.var(ddof=1))
    assert got.estimate == 2.0 and got.seeds == 3 and got.se == pytest.approx(se)
    assert got.high - 2.0 == pytest.approx(4.302653 * se, rel=1e-6)  # t(2) at .975
    assert got.low == pytest.approx(2.0 - 4.302653 * se, rel=1e-6)
    assert got.mde == pytest.approx((4.302653 + 1.060660) * se, rel=1e-5)  # + t(2) at .80
    assert got.half_width == pytest.approx(4.302653 * se, rel=1e-6)


def test_seed_interval_drops_undefined_seeds_and_needs_two():
    one = seed_interval([0.3, float("nan")], [0.2, 0.4])
    assert one.estimate == pytest.approx(0.3) and one.seeds == 1 and np.isnan(one.low) and np.isnan(one.mde)
    # seeds that agree exactly still keep the patients' width (the floor of the module docstring)
    agree = seed_interval([0.1, 0.1, 0.1, 0.1], np.array([0.0, 0.2] * 20))
    assert agree.low < 0.1 - 0.1 * 3.18 < agree.high  # t(3) = 3.18, patient sd ~ 0.1
    with pytest.raises(ValueError, match="level"):
        seed_interval([1.0, 2.0], [1.0], level=0)


def test_percentile_interval_ignores_nan():
    assert percentile_interval([0.0, float("nan"), 1.0, 2.0], level=0.5) == (0.5, 1.5)
    assert all(np.isnan(percentile_interval([1.0])))


def test_welch_satterthwaite_df_has_the_known_formula_and_limits():
    d = np.array([0.01, 0.03, 0.02, 0.04])  # s^2 = 1.667e-4, K = 4
    patient_means = np.array([0.015, 0.035] * 50)  # v_p = var of the resampled means
    got = seed_interval(d, patient_means, patient_df=29)
    a, b = d.var(ddof=1) / 4, patient_means.var(ddof=1)
    df = (a + b) ** 2 / (a**2 / 3 + b**2 / 29)
    assert got.df == pytest.approx(df) and 3 < got.df < 3 + 29
    assert got.high - got.estimate == pytest.approx(student_t.ppf(0.975, df) * got.se)
    assert got.p == pytest.approx(2 * student_t.sf(got.estimate / got.se, df)) and got.t == got.estimate / got.se
    assert got.patient_var == pytest.approx(b)
    # no patient df given: the old K - 1; seeds that agree exactly: the patients' df
    assert seed_interval(d, patient_means).df == 3
    assert seed_interval([0.1] * 4, patient_means, patient_df=29).df == pytest.approx(29)
    # a negligible patient term keeps t(K-1); vectorised core equals the scalar one
    assert seed_interval(d, np.full(10, 0.02), patient_df=29).df == pytest.approx(3)
    _, se, dfs = seed_statistics(np.stack([d, d[::-1]]), np.array([b, b]), 29)
    np.testing.assert_allclose(dfs, [df, df]) and np.testing.assert_allclose(se, [got.se, got.se])
    assert satterthwaite_df(d.var(ddof=1), 4, b, 29) == pytest.approx(df)
    with pytest.raises(ValueError, match="patient_df"):
        seed_interval(d, patient_means, patient_df=0)
