"""Each marker meets its definition on every slice where it is labelled (clean HU, exact parts)."""

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from mtlswin.data.phantom import anatomy
from mtlswin.data.phantom.hematoma import (
    PART_BLEND_HIGH,
    PART_BLEND_LOW,
    PART_FLUID_HIGH,
    PART_FLUID_LOW,
    PART_HYPO,
)


def _with(records, marker):
    out = [r for r in records if r.labels[marker]]
    assert len(out) >= 3, f"too few {marker} slices to test"
    return out


def test_masks_cover_exactly_the_hematoma_pixels(small_records):
    _, records = small_records
    for rec in records:
        hem = rec.tissue == anatomy.HEMATOMA
        if rec.mask is None:
            assert not hem.any() and not any(rec.labels.values())
        else:
            assert np.array_equal(rec.mask, hem) and np.array_equal(rec.mask, rec.parts > 0)


def test_hypodensity_is_encapsulated_and_15_hu_below(small_records):
    _, records = small_records
    for rec in _with(records, "hypodensity"):
        hypo = rec.parts == PART_HYPO
        labels, n = ndimage.label(hypo)
        for i in range(1, n + 1):
            region = labels == i
            ring = ndimage.binary_dilation(region) & ~region
            assert rec.mask[ring].all(), "hypodense region touches the hematoma border"
            assert rec.clean[region].max() <= rec.clean[ring].min() - 15
            assert rec.clean[region].min() >= 20
    for rec in records:
        if not rec.labels["hypodensity"] and rec.parts is not None:
            assert not (rec.parts == PART_HYPO).any()


def test_blend_sign_parts_18_hu_apart_and_low_part_reaches_border(small_records):
    _, records = small_records
    for rec in _with(records, "blend_sign"):
        low, high = rec.parts == PART_BLEND_LOW, rec.parts == PART_BLEND_HIGH
        assert rec.clean[high].min() - rec.clean[low].max() >= 18
        border = rec.mask & ~ndimage.binary_erosion(rec.mask)
        assert (low & border).any(), "blend-sign hypodense part must not be encapsulated"
        assert (ndimage.binary_dilation(low) & high).any(), "parts must be side by side"


def test_fluid_level_is_a_horizontal_interface_hypodense_above(small_records):
    _, records = small_records
    for rec in _with(records, "fluid_level"):
        low, high = rec.parts == PART_FLUID_LOW, rec.parts == PART_FLUID_HIGH
        low_rows, high_rows = np.nonzero(low)[0], np.nonzero(high)[0]
        assert low_rows.max() < high_rows.min(), "interface is not one image row"  # straight and horizontal
        assert rec.clean[high].min() - rec.clean[low].max() >= 18


def _solidity(mask):
    pts = np.argwhere(mask).astype(float)
    corners = np.concatenate([pts + d for d in ((0, 0), (0, 1), (1, 0), (1, 1))])
    return mask.sum() / ConvexHull(corners).volume


def test_irregular_margin_is_less_convex_than_smooth(small_records):
    _, records = small_records
    irregular = [_solidity(r.mask) for r in _with(records, "irregular_margin")]
    smooth = [_solidity(r.mask) for r in records
              if r.mask is not None and r.mask.sum() >= 60 and not r.labels["irregular_margin"]]  # fmt: skip
    assert len(smooth) >= 3
    assert np.median(irregular) < np.median(smooth) - 0.05, (np.median(irregular), np.median(smooth))
