"""Shared fixtures: a tiny synthetic data set (see tests/data_fixtures.py)."""

from __future__ import annotations

import pytest

from data_fixtures import TinyData, make_tiny_data

__all__ = ["make_tiny_data"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> TinyData:
    """64 slices of 32x32 8-bit PNG with ``.root``, ``.manifest`` (CSV) and ``.splits`` (CSV)."""
    return make_tiny_data(tmp_path_factory.mktemp("tiny_data"), n=64, size=32, seed=0)
