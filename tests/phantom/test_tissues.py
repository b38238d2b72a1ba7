"""HU of every tissue inside its range, in the clean image and in the written (noisy) one."""

import numpy as np
from scipy import ndimage

from mtlswin.data.phantom import anatomy, hematoma


def test_clean_hu_of_each_tissue_within_range(small_records):
    _, records = small_records
    seen = set()
    for rec in records:
        for code, name in enumerate(anatomy.TISSUE_NAMES):
            values = rec.clean[rec.tissue == code]
            if values.size:
                lo, hi = anatomy.HU_RANGES[name]
                assert lo <= values.min() and values.max() <= hi, (name, values.min(), values.max())
                seen.add(name)
    assert seen == set(anatomy.TISSUE_NAMES)


def test_hematoma_base_density_is_acute(small_records):
    _, records = small_records
    base = [rec.clean[rec.parts == hematoma.PART_BASE].mean() for rec in records
            if rec.parts is not None and (rec.parts == hematoma.PART_BASE).any()]  # fmt: skip
    assert len(base) >= 10
    assert 40 <= min(base) and max(base) <= 90
    assert 60 <= np.median(base) <= 80


def test_written_hu_medians_within_range(small_records):
    """Medians of the noisy written HU over the core (eroded) pixels of each tissue."""
    _, records = small_records
    pooled = {name: [] for name in ("csf", "grey", "white", "skull", "hematoma")}
    for rec in records:
        for name in pooled:
            core = ndimage.binary_erosion(rec.tissue == anatomy.TISSUE_NAMES.index(name), iterations=1)
            pooled[name].append(rec.hu[core])
    for name, chunks in pooled.items():
        values = np.concatenate(chunks)
        lo, hi = anatomy.HU_RANGES[name]
        assert values.size >= 500, name
        assert lo <= np.median(values) <= hi, (name, np.median(values))
    air = np.concatenate([rec.hu[rec.tissue == anatomy.AIR] for rec in records[:20]])
    assert abs(np.median(air) - (-1000)) <= 25
