"""Prevalences, per-hospital counts and the cue-label correlation, measured on generated data."""

import itertools

import numpy as np
import pytest

from mtlswin.data.phantom.cue import phi
from mtlswin.data.phantom.generate import MARKERS, SynthConfig, iter_slices


def _table(config):
    rows = [(r.hospital, r.patient_id, r.mask is not None, r.cue, *(r.labels[m] for m in MARKERS))
            for r in iter_slices(config)]  # fmt: skip
    hosp = np.array([r[0] for r in rows])
    return rows, hosp, np.array([r[2] for r in rows]), np.array([r[3] for r in rows]), np.array([r[4:] for r in rows])


@pytest.fixture(scope="module", params=[0.9, 0.0])
def small_96(request):
    config = SynthConfig(preset="demo", slices=800, size=96, seed=11, spurious=request.param)
    return config, _table(config)


def test_counts_and_prevalences_within_tolerance(small_96):
    config, (rows, hosp, hem, _, lab) = small_96
    assert tuple(int((hosp == h).sum()) for h in range(1, 12)) == config.counts()
    assert abs(hem.mean() - config.p_hematoma) < 0.05
    assert abs(lab[:, 0].mean() - config.p_hypodensity) < 0.04
    assert all(lab[:, j].mean() > 0.005 for j in range(4))
    pids = [r[1] for r in rows]  # slices of one patient are consecutive
    assert len(set(pids)) == 1 + sum(a != b for a, b in itertools.pairwise(pids))


def test_cue_label_correlation_follows_spurious(small_96):
    config, (_, hosp, _, cue, lab) = small_96
    inside = hosp <= 4
    assert abs(phi(cue[inside], lab[inside, 0]) - config.spurious) < 0.12
    assert abs(phi(cue[~inside], lab[~inside, 0])) < 0.2


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="spurious"):
        SynthConfig(spurious=1.5)
    with pytest.raises(ValueError, match="p_hypodensity"):
        SynthConfig(p_hypodensity=0.5, p_hematoma=0.3)
