"""Memory settings of a training process (issue 20): empty tensors unfilled under deterministic mode, freed
memory kept by glibc. Neither may change a number the model computes."""

from __future__ import annotations

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


_FAULTS = textwrap.dedent(
    """
    import resource, sys, torch
    from mtlswin.training.allocation import keep_freed_memory
    torch.set_num_threads(1)
    ok = keep_freed_memory() if sys.argv[1] == "keep" else None
    def step(n):  # a training step's pattern: buffers of many sizes, all freed at its end
        kept = [torch.ones(n * k) for k in (1, 3, 2, 5, 4, 8, 6)]
        kept += [t * 2 for t in kept]
        return sum(float(t[0]) for t in kept)
    for n in (200_000, 150_000, 250_000):
        step(n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(30):
        step((200_000, 150_000, 250_000)[i % 3])
    print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings: Linux only")
def test_freed_memory_is_reused_without_page_faults():
    """With the thresholds raised, steps that allocate and free the same buffers fault no pages in again; glibc's
    defaults return them to the kernel and fault them back in every step."""
    faults = {}
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        ok, count = out.stdout.split()
        faults[mode] = int(count)
        if mode == "keep":
            assert ok == "True"
    assert faults["keep"] * 5 < faults["default"], faults  # measured: 0-2,246 against 27,704-292,030 over 30 steps
