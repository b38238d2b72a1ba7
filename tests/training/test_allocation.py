"""Memory settings of a training process: empty tensors unfilled under deterministic mode, freed
memory kept by glibc. Neither may change a number the model computes."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
import textwrap

import pytest
import torch

from mtlswin.models import create_model, test_overrides
from mtlswin.training.allocation import unfilled_empty_tensors


def _grads(fill: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("mtl_swin_unet", **test_overrides("mtl_swin_unet"))
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    before = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = fill
    try:
        out = model(x)
        (out["logits"].square().sum() + out["seg"].square().mean() + out["rec"].mean()).backward()
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = before
    return [p.grad.clone() for p in model.parameters()]


def test_empty_tensors_are_unfilled_inside_the_block_and_filled_again_after():
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert torch.empty(1000).isnan().all()  # deterministic mode fills new tensors with NaN
        with unfilled_empty_tensors():
            assert torch.utils.deterministic.fill_uninitialized_memory is False
        assert torch.utils.deterministic.fill_uninitialized_memory is True  # restored
        assert torch.empty(1000).isnan().all()
    finally:
        torch.use_deterministic_algorithms(was)


def test_no_number_depends_on_the_fill():
    """The forward and backward of a model with every head read no buffer before writing it: the gradients with
    NaN-filled and with unfilled empty tensors are bit for bit the same (one thread, deterministic mode)."""
    was, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        filled, unfilled = _grads(True), _grads(False)
    finally:
        torch.use_deterministic_algorithms(was)
        torch.set_num_threads(threads)
    assert all(torch.isfinite(g).all() for g in filled)  # a NaN read anywhere would have spread
    assert all(torch.equal(a, b) for a, b in zip(filled, unfilled, strict=True))


_STEPS = textwrap.dedent(
    """
    import ctypes, resource, sys, torch
    from mtlswin.training.allocation import keep_freed_memory
    class MallInfo2(ctypes.Structure):  # glibc >= 2.33, malloc.h
        _fields_ = [(f, ctypes.c_size_t) for f in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    torch.set_num_threads(1)
    ok = keep_freed_memory()
    mmapped_before = libc.mallinfo2().hblkhd
    def step(n):  # a training step's pattern: buffers of many sizes (0.6-8 MB), all freed at its end
        kept = [torch.ones(n * k) for k in (1, 3, 2, 5, 4, 8, 6)]
        kept += [t * 2 for t in kept]
        sum(float(t[0]) for t in kept)
        return sum(t.numel() * t.element_size() for t in kept), libc.mallinfo2().hblkhd - mmapped_before
    for n in (200_000, 150_000, 250_000):
        step(n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    mmapped = 0
    for i in range(30):
        nbytes, in_step = step((200_000, 150_000, 250_000)[i % 3])
        mmapped = max(mmapped, in_step)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(ok, faults, nbytes, mmapped, libc.mallinfo2().arena)
    """
)


def _glibc_version() -> tuple[int, ...]:
    """(major, minor) of the C library when it is glibc, () otherwise."""
    lib, version = platform.libc_ver()
    return tuple(int(v) for v in version.split(".")[:2]) if lib == "glibc" and version else ()


@pytest.mark.skipif(_glibc_version() < (2, 33), reason="glibc's malloc settings, read with mallinfo2 (glibc >= 2.33)")
def test_freed_memory_is_kept_and_reused_without_page_faults():
    """After keep_freed_memory, a step's buffers come from the heap (none mmapped), the heap is not trimmed when
    they are freed, and the next steps reuse it: 30 steps fault in far fewer pages than one step holds.

    glibc's defaults are not compared: its dynamic mmap threshold and trimming make them vary by machine
    (measured 4,150 to 292,030 faults for the same 30 steps), so only the kept behaviour is asserted."""
    out = subprocess.run([sys.executable, "-c", _STEPS], capture_output=True, text=True, check=True)
    ok, faults, nbytes, mmapped, heap = out.stdout.split()
    assert ok == "True"
    assert int(mmapped) == 0  # no buffer of the step bypassed the heap
    assert int(heap) >= int(nbytes)  # the freed step is still held by the heap, not trimmed back to the kernel
    step_pages = int(nbytes) // resource.getpagesize()  # 55 MB: ~14,000 pages
    assert int(faults) < step_pages // 2, (faults, step_pages)  # measured 830-1,221 over 30 steps
