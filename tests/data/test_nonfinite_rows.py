"""Manifest rows whose slice holds NaN or Inf: refused (or skipped with ``on_bad_row="skip"``) by row, never cached.

The manifest check refuses them before training; a cache build or a dataset that meets one anyway (a manifest
read without the file checks) stops naming the row, and a damaged float16 cache gives no NaN to a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlswin.data.cache import SliceCache, build_cache
from mtlswin.data.dataset import SliceDataset
from mtlswin.data.inputs import SkipLog
from mtlswin.data.manifest import ManifestError, read_manifest
from mtlswin.data.readers import NonFiniteError
from mtlswin.data.volumes import expand_slices
from mtlswin.pretrain.run import UnlabeledSlices, readable_corpus


@pytest.fixture
def manifest_with_nan(tmp_path):
    rows = []
    for i in range(4):
        arr = np.full((16, 16), 0.25 * i, np.float32)
        if i == 1:
            arr[2, 3], arr[4, 5] = np.nan, -np.inf
        np.save(tmp_path / f"s{i}.npy", arr)
        rows.append({"image": f"s{i}.npy", "patient_id": f"p{i}", "hospital": 1, "hypodensity": i % 2})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


def test_the_manifest_refuses_the_row_by_number_and_kind(manifest_with_nan):
    with pytest.raises(ManifestError, match=r"row 2 \(s1\.npy\): image file: .*s1\.npy: 2 of 256 voxels are not finite "
                       r"numbers \(1 NaN, 1 -Inf\)"):  # fmt: skip
        read_manifest(manifest_with_nan)
    manifest = read_manifest(manifest_with_nan, on_bad_row="skip")
    assert manifest.table.index.tolist() == [0, 2, 3]
    assert manifest.skipped["row"].tolist() == [2] and "1 NaN, 1 -Inf" in manifest.skipped["problem"][0]


def test_a_cache_build_and_a_dataset_name_the_row(manifest_with_nan, tmp_path):
    unchecked = read_manifest(manifest_with_nan, check_files=False)
    with pytest.raises(NonFiniteError, match=r"manifest row 2: .*s1\.npy: 2 of 256 voxels"):
        build_cache(unchecked, tmp_path / "cache", size=16)
    assert not list((tmp_path / "cache").glob("[!.]*/index.json"))  # nothing built
    with pytest.raises(NonFiniteError, match=r"manifest row 2: "):
        SliceDataset(unchecked, img_size=16)[1]


def test_a_damaged_float16_cache_is_refused_by_row(manifest_with_nan, tmp_path):
    manifest = read_manifest(manifest_with_nan, on_bad_row="skip")
    cache = build_cache(manifest, tmp_path / "cache", size=16, dtype="float16")
    images = np.load(cache.path / "images.npy", mmap_mode="r+")
    images[1, 0, 0] = np.inf  # the cache row of manifest row 3 (index 2)
    images.flush()
    del images
    cache = SliceCache(cache.path)
    assert np.isfinite(cache.image(0)).all()
    with pytest.raises(NonFiniteError, match=r"images\.npy, slice manifest row\(s\) \[3\]: 1 of 256 .* \(1 \+Inf\)"):
        cache.image(2)
    with pytest.raises(NonFiniteError, match=r"manifest row\(s\) \[3\]"):
        cache.stored([0, 2, 3])


def test_pretrain_skips_a_slice_with_nan_and_keeps_the_rest(manifest_with_nan):
    skipped = SkipLog(report=lambda _line: None)
    slices = expand_slices(sorted(manifest_with_nan.parent.glob("s*.npy")), skipped)
    corpus, mean, _ = readable_corpus(UnlabeledSlices(slices, (40, 80), 16), skipped)
    assert [s.name for s in corpus.slices] == ["s0", "s2", "s3"] and np.isfinite(mean)
    assert len(skipped) == 1 and "1 NaN, 1 -Inf" in skipped.rows[0]["reason"]
