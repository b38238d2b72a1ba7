"""Shared fixtures: a tiny synthetic data set (see tests/data_fixtures.py); the Hypothesis profiles.

Property-based tests run the ``ci`` profile: a fixed number of examples, drawn from a fixed seed
(``derandomize``), so every run of CI tries the same cases; ``HYPOTHESIS_PROFILE=explore`` draws
new ones, more of them, to look for bugs by hand.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from data_fixtures import TinyData, make_tiny_data

__all__ = ["make_tiny_data"]

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> TinyData:
    """64 slices of 32x32 8-bit PNG with ``.root``, ``.manifest`` (CSV) and ``.splits`` (CSV)."""
    return make_tiny_data(tmp_path_factory.mktemp("tiny_data"), n=64, size=32, seed=0)
