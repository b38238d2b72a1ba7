"""Shared small phantoms (generated once per test session, in memory)."""

from __future__ import annotations

import pytest

from mtlswin.data.phantom.generate import SynthConfig, iter_slices


@pytest.fixture(scope="session")
def small_records():
    """~260 slices at 128x128 with the default prevalences and --spurious 0.9."""
    config = SynthConfig(preset="demo", slices=260, size=128, seed=3, spurious=0.9)
    return config, list(iter_slices(config))
