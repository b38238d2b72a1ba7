"""The memory-mapped cache: same values as decoding, keyed by contents + settings, atomic builds."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mtlswin.data import cache as cache_mod
from mtlswin.data.cache import build_cache
from mtlswin.data.manifest import read_manifest
from mtlswin.data.readers import load_mask, load_slice
from mtlswin.data.transforms import resize_pair


def _builds(monkeypatch):
    """Count calls of the cache writer."""
    calls = []
    real = cache_mod._write
    monkeypatch.setattr(cache_mod, "_write", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    return calls


def test_cache_values_match_decoding(tiny_data, tmp_path):
    m = read_manifest(tiny_data.manifest)
    c8 = build_cache(m, tmp_path, size=48, dtype="uint8")
    c16 = build_cache(m, tmp_path, size=48, dtype="float16")
    assert c8.path != c16.path
    for idx in (0, 5, 40):
        img = torch.from_numpy(load_slice(m.image_path(idx)))[None]
        mp = m.mask_path(idx)
        mask = torch.from_numpy(load_mask(mp)) if mp else torch.zeros(32, 32, dtype=torch.long)
        ref_img, ref_mask = resize_pair(img, mask, 48)
        np.testing.assert_allclose(c8.image(idx), ref_img[0].numpy(), atol=0.5 / 255 + 1e-6)
        np.testing.assert_allclose(c16.image(idx), ref_img[0].numpy(), atol=1e-3)
        np.testing.assert_array_equal(c8.mask(idx), ref_mask.numpy())
        assert bool(c8.has_mask[c8.row_of[idx]]) == (mp is not None)


def test_reused_then_rebuilt_on_changed_file_or_setting(tiny_data, tmp_path, monkeypatch):
    root = tmp_path / "d"
    shutil.copytree(tiny_data.root, root)
    m = read_manifest(root / "manifest.csv")
    calls = _builds(monkeypatch)
    first = build_cache(m, tmp_path / "c", size=32)
    assert build_cache(m, tmp_path / "c", size=32).path == first.path and len(calls) == 1
    other = build_cache(m, tmp_path / "c", size=32, window=(50, 100))
    assert other.path != first.path and len(calls) == 2
    img = np.array(Image.open(root / "images/00003.png"))
    Image.fromarray(255 - img).save(root / "images/00003.png")  # new contents
    changed = build_cache(m, tmp_path / "c", size=32)
    assert changed.path != first.path and len(calls) == 3
    assert not np.allclose(changed.image(3), first.image(3))
    np.testing.assert_array_equal(changed.image(4), first.image(4))


def test_interrupted_build_is_never_used(tiny_data, tmp_path, monkeypatch):
    m = read_manifest(tiny_data.manifest)
    real = cache_mod._Decode.__getitem__

    def crash(self, i):
        if i == 10:
            raise KeyboardInterrupt("simulated kill")
        return real(self, i)

    monkeypatch.setattr(cache_mod._Decode, "__getitem__", crash)
    with pytest.raises(KeyboardInterrupt):
        build_cache(m, tmp_path, size=32)
    assert not [p for p in tmp_path.iterdir() if (p / "index.json").exists()]
    # a leftover temp folder (a killed process) does not stop or confuse the next build
    key = cache_mod.cache_key(m, 32)
    (tmp_path / f".tmp-{key}-dead").mkdir()
    (tmp_path / f".tmp-{key}-dead" / "images.npy").write_bytes(b"partial")
    monkeypatch.setattr(cache_mod._Decode, "__getitem__", real)
    c = build_cache(m, tmp_path, size=32)
    assert c.path == tmp_path / key and c.image(0).shape == (32, 32)


def test_a_second_opener_waits_for_the_build_and_reuses_it(tiny_data, tmp_path, monkeypatch):
    """Two runs open a cache nobody has built yet (reproduce trains two runs of a draw side by side; DDP ranks):
    the second waits for the first's build and opens it. It neither decodes again nor replaces the cache the first
    is reading (before the lock, it could delete it: "No such file ... rows.npy")."""
    m = read_manifest(tiny_data.manifest)
    real, calls, release = cache_mod._write, [], threading.Event()

    def slow_first_write(*args):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            assert release.wait(30)
        real(*args)

    monkeypatch.setattr(cache_mod, "_write", slow_first_write)
    caches, errors = {}, []

    def open_cache(name):
        try:
            caches[name] = build_cache(m, tmp_path, size=32)
            caches[name].image(5)
        except Exception as err:  # reported by the assertion below
            errors.append(err)

    first = threading.Thread(target=open_cache, args=("first",), name="first")
    first.start()
    while not calls and first.is_alive():
        time.sleep(0.01)
    assert calls == ["first"], errors
    second = threading.Thread(target=open_cache, args=("second",), name="second")
    second.start()
    second.join(0.5)
    assert second.is_alive() and calls == ["first"]  # the second waits on the lock instead of decoding
    release.set()
    first.join(30)
    second.join(30)
    assert not errors and calls == ["first"]
    assert caches["first"].path == caches["second"].path
    np.testing.assert_array_equal(caches["first"].image(5), caches["second"].image(5))


def test_concurrent_builder_keeps_the_first_cache(tiny_data, tmp_path, monkeypatch):
    """Where the lock does not hold (some network file systems shared by nodes) two processes can build the same
    cache at once: the one finishing second keeps the first's instead of replacing it."""
    m = read_manifest(tiny_data.manifest)
    monkeypatch.setattr(cache_mod, "FileLock", lambda path: contextlib.nullcontext())
    real = cache_mod._write
    other = {}

    def write_while_other_finishes(tmp, *args):
        monkeypatch.setattr(cache_mod, "_write", real)
        other["cache"] = build_cache(m, tmp_path, size=32)  # the other process completes meanwhile
        other["stamp"] = (other["cache"].path / "index.json").stat().st_mtime_ns
        real(tmp, *args)

    monkeypatch.setattr(cache_mod, "_write", write_while_other_finishes)
    mine = build_cache(m, tmp_path, size=32)
    assert mine.path == other["cache"].path
    assert (mine.path / "index.json").stat().st_mtime_ns == other["stamp"]  # not replaced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    forced = build_cache(m, tmp_path, size=32, force=True)
    assert forced.path == mine.path and (forced.path / "index.json").stat().st_mtime_ns != other["stamp"]


def test_bad_settings(tiny_data, tmp_path):
    m = read_manifest(tiny_data.manifest)
    with pytest.raises(ValueError, match="cache dtype must be one of"):
        build_cache(m, tmp_path, dtype="int8")
    with pytest.raises(ValueError, match="cache size must be a positive"):
        build_cache(m, tmp_path, size=0)


def test_building_the_cache_leaves_the_global_rng_alone(tiny_data, tmp_path):
    # A run that builds the cache must initialise its model exactly like a run that finds it built:
    # the build's DataLoader draws its seed from a generator of its own, never from the global RNG.
    m = read_manifest(tiny_data.manifest)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    build_cache(m, tmp_path, size=32)
    assert torch.equal(torch.get_rng_state(), state)
    build_cache(m, tmp_path, size=32)  # found built
    assert torch.equal(torch.get_rng_state(), state)


def _key_row_at_a_time(manifest, size, dtype="uint8", window=(40, 80)):
    """The cache key as it was computed before it read the path columns at once: a row at a time from the
    table, each file hashed. Existing caches are found by this key, so it must not change."""
    import hashlib
    import json

    from mtlswin.data.manifest import resolve

    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps(cache_mod._settings(size, dtype, window), sort_keys=True).encode())
    for idx in manifest.table.index:
        image, mask = manifest.table.at[idx, "image"], manifest.table.at[idx, "mask"]
        for path in (resolve(manifest.root, image), resolve(manifest.root, mask) if mask else None):
            if path is None:
                h.update(b"|-")
                continue
            h.update(f"|{int(idx)}|{path}|{cache_mod._file_hash(cache_mod.split_slice(path)[0])}".encode())
    return h.hexdigest()


def test_the_cache_key_is_unchanged_and_memo_keys_are_real_paths(tiny_data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(tiny_data.root, root)
    (root / "linked").symlink_to(root / "images", target_is_directory=True)  # a folder reached through a link
    (root / "images" / "alias.png").symlink_to(root / "images" / "00005.png")  # a file that is a link
    table = read_manifest(root / "manifest.csv").table
    table = table.astype({"hospital": str, "cue": str})
    table.loc[3, "image"] = "linked/00003.png"
    table.loc[6, "image"] = "images/alias.png"
    table.to_csv(root / "manifest.csv", index=False)
    m = read_manifest(root / "manifest.csv")
    memo = cache_mod._HashMemo(tmp_path / "c")
    assert cache_mod.cache_key(m, 32, memo=memo) == _key_row_at_a_time(m, 32)
    assert cache_mod.cache_key(m, 32) == _key_row_at_a_time(m, 32)
    assert cache_mod.cache_key(m, 32, window=(50, 100)) != _key_row_at_a_time(m, 32)  # the check can fail
    files = {cache_mod.split_slice(p)[0] for p in m.image_paths() + m.mask_paths() if p}
    assert sorted(memo.data) == sorted({str(f.resolve()) for f in files})  # as Path.resolve() keyed it
    assert str(root / "images" / "00003.png") in memo.data and str(root / "images" / "00005.png") in memo.data
    assert not any("linked" in k or "alias" in k for k in memo.data)
