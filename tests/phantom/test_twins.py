"""Counterfactual twins: the same slice with the cue flipped, pixel-identical outside the atrophy change."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mtlswin.data.manifest import read_manifest
from mtlswin.data.phantom import hospitals
from mtlswin.data.phantom.generate import SynthConfig, iter_slices
from mtlswin.data.phantom.writer import write_dataset
from mtlswin.data.readers import load_slice

CONFIG = SynthConfig(preset="demo", slices=90, size=64, seed=5, twin_hospitals=(1, 5))


@pytest.fixture(scope="module")
def pairs():
    with_twins = list(iter_slices(CONFIG))
    plain = list(iter_slices(SynthConfig(preset="demo", slices=90, size=64, seed=5)))
    return with_twins, plain


def _reach(rec) -> int:
    """Pixels the scanner's blur spreads a change over (kernel radius, rounded up)."""
    profile = hospitals.PROFILES[rec.hospital]
    return int(np.ceil(4.0 * profile.blur_mm / rec.spacing)) + 1


def test_twins_only_in_the_chosen_hospitals(pairs):
    records, _ = pairs
    assert {r.hospital for r in records if r.twin_hu is not None} == {1, 5}
    assert all(r.twin_hu is None for r in records if r.hospital not in (1, 5))


def test_twins_do_not_change_the_data_set(pairs):
    records, plain = pairs
    assert len(records) == len(plain)
    for a, b in zip(records, plain):
        assert np.array_equal(a.hu, b.hu) and a.cue == b.cue and a.labels == b.labels


def test_twin_is_pixel_identical_outside_the_atrophy_change(pairs):
    records, _ = pairs
    changed_somewhere = 0
    for rec in (r for r in records if r.twin_hu is not None):
        change = rec.clean != rec.twin_clean
        outside = ~ndimage.binary_dilation(change, iterations=_reach(rec))
        assert np.array_equal(rec.hu[outside], rec.twin_hu[outside])
        if rec.mask is not None:  # the hematoma is not part of the change
            assert not (change & rec.mask).any()
        changed_somewhere += bool(change.any())
        # the atrophy change lies in the brain's CSF spaces: the twin differs where the cue says it should
        assert np.sign(rec.twin_clean[change].mean() - rec.clean[change].mean()) == (1 if rec.cue else -1) or (
            not change.any()
        )
    n = sum(r.twin_hu is not None for r in records)
    assert changed_somewhere >= 0.9 * n  # the cue shows on (nearly) every slice


def test_writer_names_each_twin_in_the_manifest(tmp_path):
    config = SynthConfig(preset="demo", slices=30, size=64, seed=2, twin_hospitals=(1,))
    write_dataset(config, tmp_path)
    manifest = read_manifest(tmp_path / "manifest.csv")
    rows = manifest.twin_rows()
    assert rows and all(manifest.table.at[i, "hospital"] == 1 for i in rows)
    subset = [int(i) for i in manifest.table.index[::-1]]  # rows asked for keep their order
    assert manifest.twin_rows(subset) == [i for i in subset if i in set(rows)] == rows[::-1]
    twins = manifest.twins()
    assert list(twins.table.index) == rows
    assert (twins.table["cue"].to_numpy() == 1 - manifest.table.loc[rows, "cue"].to_numpy()).all()
    i = rows[0]
    image = load_slice(manifest.image_path(i), (40, 80))
    twin = load_slice(twins.image_path(i), (40, 80))
    assert image.shape == twin.shape and not np.array_equal(image, twin)
