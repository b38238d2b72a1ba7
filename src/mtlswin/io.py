"""Atomic file output: a file we write is either absent, the old version, or the whole new version.

Every writer of a result file goes through :func:`atomic_path`: it hands out a temporary path in the
target's folder (``.<name>.<random>.tmp``); when the ``with`` block ends without an exception the
temporary file is flushed to disk and ``os.replace``-d over the target (atomic on POSIX and Windows),
otherwise it is removed. A process killed at any instant therefore leaves at most a ``.*.tmp`` file,
which no reader opens. :func:`atomic_write_text` / :func:`atomic_write_bytes` are the one-liners.

:func:`created_dir` is the folder-level counterpart for commands: it creates an output folder and
removes it again if the command fails, but only when this call created it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "created_dir", "fsync_dir"]


def fsync_dir(folder: str | Path) -> None:
    """``fsync`` a folder (POSIX) so that a rename inside it survives a crash; a no-op elsewhere."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; replaces ``path`` with it on success, deletes it on any exception.

    The caller writes the temporary file by name (``df.to_csv(tmp)``, ``fig.savefig(tmp)``, ...). The
    temporary name keeps the target's suffix so that writers that choose a format by suffix still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def created_dir(path: str | Path, keep: Callable[[], bool] | None = None) -> Iterator[Path]:
    """``mkdir -p path`` for the ``with`` block; on an exception, remove the folders this call created.

    A folder that existed before is left as it was (with whatever the block wrote into it removed only
    when the block cleans up itself); a folder created here, and its parents created here, disappear, so
    a failed command leaves no empty or half-filled output folder behind. ``keep``: called on failure; when it
    returns True the folder stays (e.g. a training run that already wrote a checkpoint it can resume from).
    """
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if missing and not (keep is not None and keep()):
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise
