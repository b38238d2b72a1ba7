"""The fused final expansion + LayerNorm + 1x1 heads against the plain layers it replaces."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mtlswin.models.decoder import FinalPatchExpand
from mtlswin.models.expand_heads import _NormalisedProjection, expand_norm_heads


def _layers(dim: int = 8, scale: int = 4, n_out: int = 3, dtype=torch.float64, seed: int = 0, side: int = 5):
    """A FinalPatchExpand with a non-trivial LayerNorm affine, head weights, and tokens needing grads."""
    torch.manual_seed(seed)
    up = FinalPatchExpand(dim, scale).to(dtype)
    with torch.no_grad():
        up.norm.weight.normal_()
        up.norm.bias.normal_()
    tokens = torch.randn(2, side, side + 1, dim, dtype=dtype, requires_grad=True)
    heads = torch.randn(n_out, dim, dtype=dtype, requires_grad=True)
    return up, tokens, heads


def _plain(up: FinalPatchExpand, tokens: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """What the fusion replaces: expansion, LayerNorm, rearrange to NCHW, then a 1x1 convolution."""
    return F.conv2d(up(tokens).permute(0, 3, 1, 2), heads[:, :, None, None])


def _grads(out: torch.Tensor, upstream: torch.Tensor, inputs) -> list[torch.Tensor]:
    return list(torch.autograd.grad((out * upstream).sum(), inputs))


@pytest.mark.parametrize("chunk_elements", [1, 128, 10**9])  # one token per chunk, several, all in one
def test_values_and_every_gradient_equal_the_plain_layers_in_float64(chunk_elements):
    up, tokens, heads = _layers()
    inputs = [tokens, heads, up.expand.weight, up.norm.weight, up.norm.bias]
    plain = _plain(up, tokens, heads)
    b, h, w, c = tokens.shape
    grouped = expand_norm_heads(
        tokens.reshape(-1, c), up.expand.weight, up.norm.weight, up.norm.bias, heads, up.norm.eps, chunk_elements
    )
    assert grouped.shape == (b * h * w, 16, 3) and grouped.dtype == torch.float64
    fused = up.project(tokens, heads)
    assert fused.shape == plain.shape == (2, 3, 20, 24)
    assert (fused - plain).abs().max() < 1e-12 * plain.abs().max()
    # The chunked result, rearranged by hand: group p1*4 + p2 of token (i, j) is pixel (4i + p1, 4j + p2).
    manual = grouped.view(b, h, w, 4, 4, 3).permute(0, 5, 1, 3, 2, 4).reshape(b, 3, 4 * h, 4 * w)
    assert (manual - plain).abs().max() < 1e-12 * plain.abs().max()
    upstream = torch.randn_like(plain)
    for name, got, want in zip(
        ["tokens", "heads", "expand", "norm.weight", "norm.bias"],
        _grads(manual, upstream, inputs),
        _grads(plain, upstream, inputs),
        strict=True,
    ):
        assert (got - want).abs().max() < 1e-11 * want.abs().max(), name


def test_the_hand_written_backward_passes_gradcheck():
    torch.manual_seed(1)
    h = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    mix = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    factor = torch.randn(3, 4, 4, dtype=torch.float64)
    gram = (factor.transpose(1, 2) @ factor).requires_grad_()  # symmetric positive semi-definite, as G_k is
    assert torch.autograd.gradcheck(lambda h, m, g: _NormalisedProjection.apply(h, m, g, 1e-5, 3), (h, mix, gram))


def test_float32_agrees_with_the_plain_layers_and_inference_takes_the_same_values():
    up, tokens, heads = _layers(dim=16, dtype=torch.float32, seed=2)
    plain = _plain(up, tokens, heads)
    fused = up.project(tokens, heads)
    assert fused.dtype == torch.float32
    assert (fused - plain).abs().max() < 1e-5 * plain.abs().max()
    with torch.inference_mode():
        assert torch.allclose(up.project(tokens, heads), fused, rtol=0, atol=1e-6 * plain.abs().max().item())


def test_it_keeps_about_half_what_the_plain_layers_keep_for_backward_and_no_full_resolution_map_whole():
    def saved(side: int, fused: bool) -> list[int]:
        """Sizes of the tensors autograd keeps for the backward pass, for ``2 x side x (side+1)`` tokens."""
        up, tokens, heads = _layers(dim=32, dtype=torch.float32, seed=3, side=side)
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            if fused:
                flat = tokens.reshape(-1, 32)
                expand_norm_heads(flat, up.expand.weight, up.norm.weight, up.norm.bias, heads, chunk_elements=5120)
            else:
                _plain(up, tokens, heads)
        return sizes

    tokens = 2 * 20 * 21
    full = tokens * 16 * 32  # values of the full-resolution 32-channel map
    plain, fused = saved(20, fused=False), saved(20, fused=True)
    assert max(plain) == full and max(fused) <= full / 8  # biggest kept: the 16*3 head outputs per token
    assert fused.count(5120) == tokens // 10  # G_k h, in chunks of ten tokens
    # Per token (the weights' share cancels out): K*C + K*(n+1) + C kept against about 2*K*C.
    per_token_plain = (sum(plain) - sum(saved(10, fused=False))) / (tokens - 2 * 10 * 11)
    per_token_fused = (sum(fused) - sum(saved(10, fused=True))) / (tokens - 2 * 10 * 11)
    assert per_token_fused == 16 * 32 + 16 * 4 + 32 and per_token_plain >= 2 * 16 * 32


def test_an_empty_batch_gives_empty_outputs_and_zero_weight_gradients():
    up, _, heads = _layers()
    tokens = torch.zeros(0, 3, 3, 8, dtype=torch.float64, requires_grad=True)
    out = up.project(tokens, heads)
    assert out.shape == (0, 3, 12, 12)
    out.sum().backward()
    assert tokens.grad.shape == tokens.shape and up.expand.weight.grad.abs().max() == 0


def test_mismatched_weights_are_rejected_naming_the_shapes():
    tokens = torch.randn(4, 8)
    with pytest.raises(ValueError, match=r"expand weight \(100, 8\) and head weight \(2, 8\) do not fit 8-channel"):
        expand_norm_heads(tokens, torch.randn(100, 8), torch.ones(8), torch.zeros(8), torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"head weight \(2, 6\)"):
        expand_norm_heads(tokens, torch.randn(128, 8), torch.ones(8), torch.zeros(8), torch.randn(2, 6))


def test_autocast_does_not_lower_its_precision():
    up, tokens, heads = _layers(dim=16, dtype=torch.float32, seed=4)
    exact = up.project(tokens, heads)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = up.project(tokens, heads)
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, exact)
