"""The slice cache's build lock holds between processes that share nothing but the file system.

Each child here is its own interpreter in its own session (``start_new_session=True``: no shared process group,
no inherited lock), as two training runs or two DDP ranks started by a scheduler are. ``FileLock`` is filelock's
``UnixFileLock``, an ``flock(2)`` on ``CACHE_DIR/.<key>.lock``: it holds between processes on one host. Across
nodes on a shared file system it holds only where that file system carries flock: Linux's NFS client turns
flock into NFS byte-range locks, which need the server's lock service (NFSv4, or lockd for v3) and do not span
nodes on a mount with ``nolock`` or ``local_lock=flock``. Where it does not hold, ``build_cache`` still never
deletes a complete cache (see its comments), but two nodes may both build.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mtlswin.data.cache import build_cache
from mtlswin.data.manifest import read_manifest

HOLD_S = 1.5  # how long the first process keeps the lock while the second is known to be waiting for it

# Holds FileLock(argv[1]) until the file argv[3] exists, after writing argv[2]; argv[4] is a safety limit.
_HOLDER = """
import sys, time
from pathlib import Path
from filelock import FileLock

lock, held, release, limit = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
with FileLock(lock):
    held.write_text("held")
    end = time.monotonic() + limit
    while not release.exists() and time.monotonic() < end:
        time.sleep(0.02)
"""

# Tries FileLock(argv[1]) for argv[2] seconds: prints "acquired" or "timeout".
_TRIER = """
import sys
from filelock import FileLock, Timeout

try:
    with FileLock(sys.argv[1], timeout=float(sys.argv[2])):
        print("acquired")
except Timeout:
    print("timeout")
"""

# Opens the cache of the manifest argv[1] in argv[2] once the file argv[4] exists (both children start
# together), after writing argv[3]/ready.<pid>. The cache writer is wrapped to leave argv[3]/build.<pid> and to
# hold the lock HOLD_S longer, so the other child surely arrives while the build is under way.
_BUILDER = """
import hashlib, json, os, sys, time
from pathlib import Path

from mtlswin.data import cache as cache_mod
from mtlswin.data.manifest import read_manifest

manifest, cache_dir, marks, go, hold = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5])
real_write = cache_mod._write

def counted_write(*args, **kwargs):
    (marks / f"build.{os.getpid()}").write_text(repr(time.time()))
    time.sleep(hold)
    return real_write(*args, **kwargs)

cache_mod._write = counted_write
m = read_manifest(manifest)
(marks / f"ready.{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
start = time.time()
cache = cache_mod.build_cache(m, cache_dir, size=32)
images = hashlib.sha256(cache.stored(m.table.index)[0].tobytes()).hexdigest()
print(json.dumps({"pid": os.getpid(), "path": str(cache.path), "images": images, "start": start, "end": time.time()}))
"""


def _spawn(tmp_path: Path, name: str, code: str, *args) -> subprocess.Popen:
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"child {proc.args} did not end in {timeout} s: {err}") from None
    assert proc.returncode == 0, f"child {proc.args} failed ({proc.returncode}):\n{err}"
    return out.strip()


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"child ended before writing {path}:\n{proc.communicate()[1]}"
        assert time.monotonic() < end, f"no {path} after {timeout} s"
        time.sleep(0.02)


def test_file_lock_held_by_one_process_blocks_another(tmp_path):
    lock, held, release = tmp_path / ".key.lock", tmp_path / "held", tmp_path / "release"
    holder = _spawn(tmp_path, "holder", _HOLDER, lock, held, release, 120)
    try:
        _wait_for(held, holder)
        assert os.getsid(holder.pid) != os.getsid(0)  # its own session: nothing inherited from this process
        assert _finish(_spawn(tmp_path, "trier", _TRIER, lock, 1.0)) == "timeout"
    finally:
        release.touch()
    _finish(holder)
    assert _finish(_spawn(tmp_path, "trier", _TRIER, lock, 30)) == "acquired"  # released at the holder's end


def test_two_processes_opening_one_cache_build_it_once(tiny_data, tmp_path):
    cache_dir, marks, go = tmp_path / "cache", tmp_path / "marks", tmp_path / "go"
    marks.mkdir()
    args = (tiny_data.manifest, cache_dir, marks, go, HOLD_S)
    children = [_spawn(tmp_path, f"builder{i}", _BUILDER, *args) for i in range(2)]
    try:
        for child in children:
            _wait_for(marks / f"ready.{child.pid}", child)
    finally:
        go.touch()
    results = [json.loads(_finish(child)) for child in children]

    builds = sorted(marks.glob("build.*"))
    assert len(builds) == 1, f"the cache was built {len(builds)} times: {builds}"
    builder = int(builds[0].suffix[1:])
    built_at = float(builds[0].read_text())
    waiter = next(r for r in results if r["pid"] != builder)
    # the waiter asked while the build held the lock and returned only after the build ended
    assert waiter["start"] < built_at + HOLD_S
    assert waiter["end"] > built_at + HOLD_S

    assert results[0]["path"] == results[1]["path"]
    assert results[0]["images"] == results[1]["images"]
    assert not list(cache_dir.glob(".tmp-*"))
    m = read_manifest(tiny_data.manifest)
    same = build_cache(m, tmp_path / "alone", size=32)  # one process alone builds the same cache
    assert Path(results[0]["path"]).name == same.path.name
    assert hashlib.sha256(same.stored(m.table.index)[0].tobytes()).hexdigest() == results[0]["images"]
