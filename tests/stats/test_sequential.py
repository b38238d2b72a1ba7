"""Lan-DeMets O'Brien-Fleming boundaries: the published values, scipy's multivariate normal, and the Holm steps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from mtlswin.stats import look_levels, obf_boundaries, obf_spending, sequential_holm
from mtlswin.stats import sequential as seq


def test_boundaries_equal_the_published_ones():
    # Lan-DeMets O'Brien-Fleming, two-sided alpha .05, 5 equally spaced looks (R ldbounds / gsDesign sfLDOF)
    got = obf_boundaries([0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(got, [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=6e-4)
    np.testing.assert_allclose(obf_boundaries([0.5, 1.0]), [2.9626, 1.9686], atol=6e-4)
    assert obf_boundaries([1.0]) == pytest.approx([norm.isf(0.025)])  # one look: the fixed-sample test


def test_the_boundaries_spend_alpha_as_planned_under_the_canonical_joint_distribution():
    # scipy's multivariate normal CDF (Genz) of the continuation region: 1 - alpha*(t_k) at every look
    t = np.array([3, 6, 9, 12, 15, 18, 21, 24]) / 24
    c = obf_boundaries(t)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    for k in (2, 5, 8):
        inside = multivariate_normal(np.zeros(k), cov[:k, :k]).cdf(c[:k], lower_limit=-c[:k],
                                                                   rng=np.random.default_rng(0))  # fmt: skip
        assert 1 - inside == pytest.approx(obf_spending(t[k - 1]), abs=2e-4)
    assert obf_spending(1.0) == pytest.approx(0.05)


def test_the_grid_is_fine_enough(monkeypatch):
    t = [0.125, 0.375, 0.5, 0.9, 1.0]  # unequal looks
    coarse = obf_boundaries(t)
    monkeypatch.setattr(seq, "_POINTS_PER_SD", 160)
    np.testing.assert_allclose(obf_boundaries(t), coarse, atol=1e-5)


def test_unequal_and_unplanned_looks_and_bad_arguments():
    c = obf_boundaries([0.3, 0.7, 1.0])
    assert c[0] > c[1] > c[2] > norm.isf(0.025)
    with pytest.raises(ValueError, match="increase"):
        obf_boundaries([0.5, 0.4])
    with pytest.raises(ValueError, match="increase"):
        obf_boundaries([0.5, 1.2])
    with pytest.raises(ValueError, match="alpha"):
        obf_boundaries([1.0], alpha=0)


def test_holm_passes_alpha_on_at_the_same_look():
    fractions = [0.5, 1.0]
    full, half = look_levels(fractions, 0.05), look_levels(fractions, 0.025)
    assert half < full
    # claim 0 clears the level of alpha / 2, claim 1 only that of alpha: Holm rejects both, in two steps
    p0, p1 = half / 2, (half + full) / 2
    t = np.array([norm.isf(p0 / 2), norm.isf(p1 / 2)])
    rejected, level = sequential_holm(t, np.full(2, 1e9), fractions)  # df ~ inf: the z test
    assert rejected.tolist() == [True, True] and level.tolist() == [0.025, 0.05]
    # without claim 0's rejection, claim 1 alone does not reach alpha / 2
    rejected, _ = sequential_holm(np.array([0.0, t[1]]), np.full(2, 1e9), fractions)
    assert rejected.tolist() == [False, False]
    # a claim rejected at an earlier look stays rejected and frees its alpha
    rejected, level = sequential_holm(np.array([0.0, t[1]]), np.full(2, 1e9), fractions, rejected_before=[True, False])
    assert rejected.tolist() == [True, True] and level[1] == 0.05


def test_holm_is_vectorised_and_nan_is_never_rejected():
    t = np.array([[10.0, np.nan], [0.1, 0.2], [np.nan, np.nan]])
    rejected, _ = sequential_holm(t, np.full(t.shape, 20.0), [1.0])
    assert rejected.tolist() == [[True, False], [False, False], [False, False]]


def test_on_the_t_scale_the_boundary_keeps_its_nominal_level():
    # at 4 degrees of freedom, the boundary is the t quantile of the same two-sided p as the z boundary
    fractions = [0.25, 0.5]
    nominal = look_levels(fractions)
    t_crit = seq.student_t.isf(nominal / 2, 4)
    assert t_crit > obf_boundaries(fractions)[-1]
    below, above = sequential_holm(np.array([[t_crit * 0.999], [t_crit * 1.001]]), np.full((2, 1), 4.0), fractions)[0]
    assert not below[0] and above[0]
