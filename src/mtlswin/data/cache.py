"""A memory-mapped cache of decoded, windowed and resized slices (``mtlswin prepare``).

Layout of one cache, ``CACHE_DIR/<key>/``::

    index.json    settings, manifest path, rows, file hashes (written last)
    images.npy    (N, S, S) uint8 (round(255 * windowed)) or float16 (windowed), NumPy memmap
    masks.npy     (N, S, S) uint8 class labels (0 where the slice has no mask)
    has_mask.npy  (N,) bool
    rows.npy      (N,) int64: the manifest data row (0-based) of each cache row

``key`` = BLAKE2b of the preprocessing settings (size, dtype, window, format version) and of
every (image, mask) path with its file CONTENT hash, so a changed file or setting gives another key
and a fresh build. Content hashes are memoised in ``CACHE_DIR/hashes.json`` by (size, mtime) so
re-opening a cache does not re-read every file; a file whose size or mtime changed is hashed again.
A build writes into ``CACHE_DIR/.tmp-<key>-<random>/`` and ``os.replace``-s it into place at the end,
so an interrupted build is never used (a leftover ``.tmp-*`` folder is ignored). Builds of one key take turns
through the lock file ``CACHE_DIR/.<key>.lock``: a process that opens a cache another is building waits for it.

A slice holding NaN or Inf stops the build with :class:`~mtlswin.data.readers.NonFiniteError` naming its manifest
row (``read_manifest`` refuses or skips such rows before); float16 slices read back from a cache are checked
the same way, so a damaged cache file gives no NaN to a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from mtlswin.data.manifest import Manifest
from mtlswin.data.readers import NonFiniteError, Window, check_finite, load_mask, load_slice, split_slice
from mtlswin.data.transforms import resize_image, resize_mask
from mtlswin.io import atomic_write_text

CACHE_VERSION = 1
DTYPES = ("uint8", "float16")


def _file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _HashMemo:
    """Content hashes keyed by absolute path and validated by (size, mtime_ns)."""

    def __init__(self, cache_dir: Path):
        self.path = cache_dir / "hashes.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.dirty = False
        self._real_dirs: dict[str, str] = {}

    def _real_path(self, file: Path) -> str:
        """``str(file.resolve())``, resolving each folder once: a manifest's thousands of files sit in a few
        folders, and resolving every path again costs a system call per path component."""
        if file.is_symlink():
            return str(file.resolve())
        folder = str(file.parent)
        if folder not in self._real_dirs:
            self._real_dirs[folder] = str(file.parent.resolve())
        return os.path.join(self._real_dirs[folder], file.name)

    def get(self, file: Path) -> str:
        st = file.stat()
        key = self._real_path(file)
        entry = self.data.get(key)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        digest = _file_hash(file)
        self.data[key] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.dirty:
            atomic_write_text(self.path, json.dumps(self.data))


def _settings(size: int, dtype: str, window: Window) -> dict:
    if dtype not in DTYPES:
        raise ValueError(f"cache dtype must be one of {DTYPES}, got {dtype!r}")
    if size <= 0:
        raise ValueError(f"cache size must be a positive number of pixels, got {size}")
    win = window if isinstance(window, str) else [float(v) for v in window]
    return {"version": CACHE_VERSION, "size": int(size), "dtype": dtype, "window": win}


def cache_key(manifest: Manifest, size: int, dtype: str = "uint8", window: Window = (40, 80), memo=None) -> str:
    """The key of the cache for these rows, file contents and settings (see the module docstring)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps(_settings(size, dtype, window), sort_keys=True).encode())
    files: dict[Path, str] = {}
    for idx, image, mask in zip(manifest.table.index, manifest.image_paths(), manifest.mask_paths()):
        for path in (image, mask):
            if path is None:
                h.update(b"|-")
                continue
            file = split_slice(path)[0]
            if file not in files:
                files[file] = memo.get(file) if memo else _file_hash(file)
            h.update(f"|{int(idx)}|{path}|{files[file]}".encode())
    return h.hexdigest()


class SliceCache:
    """Read access to a built cache; memory maps open lazily in each process (DataLoader workers)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.index = json.loads((self.path / "index.json").read_text())
        self.rows = np.load(self.path / "rows.npy")
        self.has_mask = np.load(self.path / "has_mask.npy")
        self.row_of = {int(r): i for i, r in enumerate(self.rows)}
        self._images = self._masks = None

    def _open(self) -> None:
        self._images = np.load(self.path / "images.npy", mmap_mode="r")
        self._masks = np.load(self.path / "masks.npy", mmap_mode="r")

    def __getstate__(self):
        return {**self.__dict__, "_images": None, "_masks": None}

    @property
    def size(self) -> int:
        return int(self.index["settings"]["size"])

    def image(self, index: int) -> np.ndarray:
        """Windowed slice of manifest row ``index`` as float32 ``(S, S)`` in [0, 1]."""
        if self._images is None:
            self._open()
        return self._finite(self.as_float(self._images[self.row_of[int(index)]]), [index])

    def _finite(self, images: np.ndarray, indices) -> np.ndarray:
        """``images`` unchanged; NonFiniteError naming the cache file and manifest rows if a float16 one is not
        finite (uint8 slices always are)."""
        if images.dtype != np.uint8 and not np.isfinite(images).all():
            bad = [
                int(i) + 1 for i, one in zip(indices, images.reshape(len(indices), -1)) if not np.isfinite(one).all()
            ]
            check_finite(images, self.path / "images.npy", f"manifest row(s) {bad[:5]}")
        return images

    @staticmethod
    def as_float(stored: np.ndarray) -> np.ndarray:
        """Stored slices (any shape) -> float32 in [0, 1]: uint8 scaled by 1/255, float16 widened."""
        if stored.dtype == np.uint8:
            return stored.astype(np.float32) * np.float32(1 / 255)
        return stored.astype(np.float32)

    def stored(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(images, masks, has_mask)`` of manifest rows ``indices`` as stored (``(N, S, S)`` uint8 or float16,
        ``(N, S, S)`` uint8, ``(N,)`` bool): copies, e.g. to move a split to a device at once."""
        if self._images is None:
            self._open()
        rows = np.array([self.row_of[int(i)] for i in indices], dtype=np.int64)
        images = self._finite(np.take(self._images, rows, axis=0), indices)
        return images, np.take(self._masks, rows, axis=0), self.has_mask[rows]

    @staticmethod
    def to_float(images: torch.Tensor) -> torch.Tensor:
        """Stored images -> float32 in [0, 1], the values :meth:`image` gives (uint8 scaled by 1/255)."""
        if images.dtype == torch.uint8:
            return images.float() * np.float32(1 / 255)
        return images.float()

    def mask(self, index: int) -> np.ndarray:
        """Mask of manifest row ``index`` as int64 ``(S, S)``."""
        return self.mask_u8(index).astype(np.int64)

    def mask_u8(self, index: int) -> np.ndarray:
        """Mask of manifest row ``index`` as stored, uint8 ``(S, S)`` (a copy)."""
        if self._masks is None:
            self._open()
        return np.array(self._masks[self.row_of[int(index)]])


class _Decode(torch.utils.data.Dataset):
    """Decode + window + resize one manifest row (run by DataLoader workers during a build)."""

    def __init__(self, manifest: Manifest, size: int, window: Window):
        self.size, self.window = size, window
        self.images, self.masks = manifest.image_paths(), manifest.mask_paths()
        self.rows = manifest.table.index.tolist()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        try:
            full = load_slice(self.images[i], self.window)
            mask = load_mask(self.masks[i]) if self.masks[i] is not None else None
        except NonFiniteError as err:
            raise NonFiniteError(f"manifest row {self.rows[i] + 1}: {err}") from err
        image = resize_image(full, self.size)
        mask_path = self.masks[i]
        if mask is None:
            return i, image, np.zeros((self.size, self.size), np.uint8), False
        if mask.shape != full.shape:
            raise ValueError(f"{mask_path}: mask size {mask.shape} differs from image size {full.shape}")
        return i, image, resize_mask(np.clip(mask, 0, 255).astype(np.uint8), self.size), True


def _as_is(sample):
    """DataLoader collate that keeps NumPy arrays (no tensor ops, no torch threads, in the main process)."""
    return sample


def _write(tmp: Path, manifest: Manifest, settings: dict, key: str, num_workers: int) -> None:
    n, s = len(manifest), settings["size"]
    images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.dtype(settings["dtype"]), (n, s, s))
    masks = np.lib.format.open_memmap(tmp / "masks.npy", "w+", np.uint8, (n, s, s))
    has_mask = np.zeros(n, bool)
    loader = torch.utils.data.DataLoader(
        _Decode(manifest, s, settings["window"]),
        batch_size=None,
        num_workers=num_workers,
        shuffle=False,
        collate_fn=_as_is,
        generator=torch.Generator(),  # its own: an iterator draws a seed, which must not come from the global RNG
    )
    for i, image, mask, present in loader:
        images[i] = np.rint(image * 255) if settings["dtype"] == "uint8" else image
        masks[i], has_mask[i] = mask, present
    images.flush()
    masks.flush()
    del images, masks
    np.save(tmp / "has_mask.npy", has_mask)
    np.save(tmp / "rows.npy", manifest.table.index.to_numpy().astype(np.int64))
    index = {"key": key, "settings": settings, "manifest": str(manifest.path), "n": n}
    (tmp / "index.json").write_text(json.dumps(index, indent=1))


def find_cache(
    manifest: Manifest, cache_dir: str | Path, size: int = 224, dtype: str = "uint8", window: Window = (40, 80)
) -> SliceCache | None:
    """The built cache of exactly these rows, files (by content) and settings, or None (nothing is built).

    A cache exists only after every one of its files was decoded, so finding it also vouches for the files:
    the data module then skips the per-file checks of the manifest (which open every file).
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return None
    memo = _HashMemo(cache_dir)
    try:
        key = cache_key(manifest, size, dtype, window, memo)
    except OSError:  # a listed file is missing or unreadable: no cache can match
        return None
    memo.save()
    final = cache_dir / key
    return SliceCache(final) if (final / "index.json").is_file() else None


def build_cache(
    manifest: Manifest,
    cache_dir: str | Path,
    size: int = 224,
    dtype: str = "uint8",
    window: Window = (40, 80),
    num_workers: int = 0,
    force: bool = False,
) -> SliceCache:
    """Open the cache of these rows/files/settings, building it first if it does not exist."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    settings = _settings(size, dtype, window)
    memo = _HashMemo(cache_dir)
    key = cache_key(manifest, size, dtype, window, memo)
    memo.save()
    final = cache_dir / key

    def reusable() -> bool:  # a complete cache is in place and no rebuild was asked for
        return not force and (final / "index.json").is_file()

    if reusable():
        return SliceCache(final)  # built: opened without the lock, so no lock file is written
    # One build per key at a time: reproduce trains two runs of a draw side by side and both open its cache, and
    # DDP ranks open it together. The second waits for the lock and then finds the first's cache. Without the
    # lock, a process that finished second could delete the cache the first had just moved in and was reading.
    with FileLock(cache_dir / f".{key}.lock"):
        if reusable():
            return SliceCache(final)  # built by the process we waited for
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".tmp-{key}-"))
        try:
            _write(tmp, manifest, settings, key, num_workers)
            if reusable():
                # another process finished first without the lock (a file system where it does not hold, such as
                # some network mounts shared by nodes): keep its cache, never delete a complete one
                return SliceCache(final)
            if final.exists():
                shutil.rmtree(final)  # forced rebuild, or a folder left without index.json
            try:
                os.replace(tmp, final)
            except OSError:
                if not (final / "index.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return SliceCache(final)
