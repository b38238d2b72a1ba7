"""Holm across a family: statsmodels' multipletests, with undefined p-values left out."""

from __future__ import annotations

import numpy as np
import pytest

from mtlswin.stats import holm


def test_holm_known_answer():
    # sorted p .01, .02, .04 -> adjusted 3 * .01, max(.03, 2 * .02), max(.04, .04) = .03, .04, .04
    rejected, adjusted = holm([0.04, 0.01, 0.02])
    np.testing.assert_allclose(adjusted, [0.04, 0.03, 0.04])
    assert rejected.tolist() == [True, True, True]
    rejected, adjusted = holm([0.04, 0.01, 0.03])  # step 2: .03 > .05 / 2 stops the steps
    assert rejected.tolist() == [False, True, False] and adjusted[2] == pytest.approx(0.06)


def test_nan_is_left_out_of_the_family():
    rejected, adjusted = holm([0.03, float("nan")])
    assert rejected.tolist() == [True, False] and adjusted[0] == 0.03 and np.isnan(adjusted[1])
    assert holm([])[0].size == 0
