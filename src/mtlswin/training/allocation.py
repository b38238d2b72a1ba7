"""How a training process gets its memory on a CPU: two settings that change no arithmetic.

1. :func:`unfilled_empty_tensors`: with ``trainer.deterministic: true`` (every shipped config) Lightning calls
   ``torch.use_deterministic_algorithms(True)``, which also switches on
   ``torch.utils.deterministic.fill_uninitialized_memory``: every ``torch.empty`` is filled with NaN, a debugging
   aid that costs a pass over memory per buffer (hundreds of ``fill_`` calls a training step). The results of a correct
   program never depend on it (nothing reads a buffer before writing it), so training turns it off inside the
   block and restores it after.
2. :func:`keep_freed_memory`: glibc's ``malloc`` hands buffers above its mmap threshold back to the kernel when
   they are freed and trims the top of the heap, so the next step's activations are page-faulted in (and zeroed by
   the kernel) again, every step. Raising both thresholds keeps freed memory in the heap
   for the next step (the resident memory stays at the peak of a step). glibc only; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["keep_freed_memory", "unfilled_empty_tensors"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD = 2**31 - 1  # the largest int mallopt takes: never trim the top of the heap (in practice)


@contextmanager
def unfilled_empty_tensors() -> Iterator[None]:
    """Inside the block new tensors are not NaN-filled under deterministic mode; the setting before is restored."""
    before = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = before


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for the rest of the process; returns whether it took effect.

    Process-wide and not undone (glibc has no getter to restore from): a process that trains keeps the memory
    of its largest step. No-op (False) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
    trim_ok = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    return mmap_ok and trim_ok
