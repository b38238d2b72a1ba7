"""Swin-Unet's last three per-pixel steps as one memory-lean function: 4x expansion, LayerNorm, 1x1 heads.

For tokens ``h`` (``C`` channels, one per ``s x s`` pixel group) the decoder computes, for each of
the ``K = s*s`` pixels ``k`` of a token::

    x_k   = E_k h                                   # expansion Linear, rows k*C .. k*C+C-1 of E
    y_k   = g * (x_k - mean(x_k)) / std(x_k) + b    # LayerNorm over the C channels
    out_k = W y_k                                   # the 1x1 heads stacked: (n, C), no bias

Written this way, every step materialises a ``(pixels, C)`` map at full image resolution (the
largest tensors of the model), and a training step keeps two of them for the backward pass and
builds two more as gradients. The same values follow from small matrices instead. With
``E'_k = E_k - mean over its rows`` (so ``E'_k h = x_k - mean(x_k)``), ``M_k = W diag(g) E'_k`` and
``G_k = E'_k^T E'_k``::

    var_k = h^T G_k h / C            rstd_k = (var_k + eps) ** -0.5
    out_k = rstd_k * (M_k h) + W b

Only ``var_k`` needs work at full resolution: ``h @ [G_1 .. G_K]``, the FLOPs of the expansion
itself. Its result ``G_k h`` is kept for the backward pass, where the gradient of ``h`` is
``sum_k 2 dvar_k G_k h / C`` (no matmul) and that of ``G_k`` is ``sum_t dvar_tk h_t h_t^T / C`` (one
matmul of the same size). So a training step runs two expansion-sized matmuls where the plain
layers run three, no LayerNorm or head over the full-resolution map, and holds ``C*K`` numbers per
token (``G_k h``) where the plain layers hold twice that and build two more as gradients.
Everything at full resolution is built chunk by chunk of tokens. No library provides this fusion,
hence the hand-written backward; the tests compare it with the plain layers in float64, values and
gradients.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["expand_norm_heads"]

# Full-resolution values per chunk. On a CPU, 1M float32 values (4 MB) keep each chunk's buffers
# below glibc's mmap threshold (32 MB), so they are reused from the heap instead of being mapped and
# faulted in afresh at every step; on a GPU, larger chunks mean fewer kernel launches.
CHUNK_ELEMENTS_CPU = 2**20
CHUNK_ELEMENTS_CUDA = 2**26


def expand_norm_heads(
    tokens: torch.Tensor,
    expand_weight: torch.Tensor,
    norm_weight: torch.Tensor,
    norm_bias: torch.Tensor,
    head_weight: torch.Tensor,
    eps: float = 1e-5,
    chunk_elements: int | None = None,
) -> torch.Tensor:
    """``(N, C)`` tokens -> ``(N, K, n)``: ``head_weight @ LayerNorm(expand_weight @ h)`` per pixel group.

    ``expand_weight``: ``(K*C, C)`` (output channel ``k*C + c`` is channel ``c`` of pixel ``k``);
    ``norm_weight`` / ``norm_bias``: ``(C,)``; ``head_weight``: ``(n, C)``. Computed in float32 (float64 for
    float64 tokens) whatever the autocast state: the variance is a quadratic form that half precision
    would spoil, as plain LayerNorm also runs in float32 under autocast.
    """
    c = tokens.shape[-1]
    k = expand_weight.shape[0] // c
    if expand_weight.shape != (k * c, c) or head_weight.shape[1] != c:
        raise ValueError(
            f"expand_norm_heads: expand weight {tuple(expand_weight.shape)} and head weight "
            f"{tuple(head_weight.shape)} do not fit {c}-channel tokens"
        )
    if chunk_elements is None:
        chunk_elements = CHUNK_ELEMENTS_CUDA if tokens.is_cuda else CHUNK_ELEMENTS_CPU
    rows = max(1, chunk_elements // (k * c))
    dtype = torch.promote_types(tokens.dtype, torch.float32)
    with torch.autocast(tokens.device.type, enabled=False):
        h = tokens.to(dtype)
        w = head_weight.to(dtype)
        centered = expand_weight.to(dtype).view(k, c, c)
        centered = centered - centered.mean(dim=1, keepdim=True)  # E'_k: rows minus their mean
        mix = (w * norm_weight.to(dtype)) @ centered  # M_k = W diag(g) E'_k: K, n, C
        gram = centered.transpose(1, 2) @ centered  # G_k = E'_k^T E'_k: K, C, C
        if torch.is_grad_enabled() and any(t.requires_grad for t in (h, mix, gram)):
            out = _NormalisedProjection.apply(h, mix, gram, eps, rows)
        else:  # inference: nothing to keep for a backward pass
            out, _ = _normalise(*_project(h, mix, gram, rows, keep=False)[:2], eps)
        return out + w @ norm_bias.to(dtype)  # N, K, n


def _project(
    h: torch.Tensor, mix: torch.Tensor, gram: torch.Tensor, rows: int, keep: bool
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``M_k h`` (N, K, n), ``h^T G_k h / C`` (N, K) and, if ``keep``, the chunks of ``G_k h`` (t, K, C)."""
    n_tokens, c = h.shape
    k, n_out, _ = mix.shape
    projected = (h @ mix.reshape(k * n_out, c).T).view(n_tokens, k, n_out)
    gram_flat = gram.transpose(0, 1).reshape(c, k * c)  # [i, k*C + j] = G_k[i, j]
    variances, kept = [], []
    for chunk in h.split(rows):
        gram_h = (chunk @ gram_flat).view(-1, k, c)  # G_k h (G_k is symmetric)
        variances.append((gram_h * chunk.unsqueeze(1)).sum(-1) / c)
        if keep:
            kept.append(gram_h)
    return projected, torch.cat(variances) if variances else h.new_zeros(0, k), kept  # no tokens: no chunks


def _normalise(projected: torch.Tensor, variance: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rstd_k * M_k h, rstd_k)`` with ``rstd_k = (var_k + eps) ** -0.5``."""
    rstd = (variance + eps).rsqrt()  # N, K
    return projected * rstd.unsqueeze(-1), rstd


class _NormalisedProjection(torch.autograd.Function):
    """``out[t, k] = (h_t^T G_k h_t / C + eps) ** -0.5 * M_k h_t`` for tokens ``h`` (N, C)."""

    @staticmethod
    def forward(ctx, h, mix, gram, eps, rows):
        projected, variance, gram_h = _project(h, mix, gram, rows, keep=True)
        out, rstd = _normalise(projected, variance, eps)
        ctx.save_for_backward(h, mix, projected, rstd, *gram_h)
        ctx.rows = rows
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        h, mix, projected, rstd, *gram_h = ctx.saved_tensors
        n_tokens, c = h.shape
        k, n_out, _ = mix.shape
        grad_flat = (grad_out * rstd.unsqueeze(-1)).reshape(n_tokens, k * n_out)  # d(M_k h)
        grad_variance = -0.5 * rstd.pow(3) * (grad_out * projected).sum(-1)  # N, K
        grad_h = grad_flat @ mix.reshape(k * n_out, c)
        grad_mix = (grad_flat.T @ h).view(k, n_out, c)
        # d(h^T G_k h / C) = (2/C) (G_k h)^T dh + (1/C) h^T dG_k h, chunk by chunk of tokens.
        grad_gram = h.new_zeros(k * c, c)  # [k*C + i, j]
        from_variance = []
        for chunk, weights, g_h in zip(h.split(ctx.rows), grad_variance.split(ctx.rows), gram_h, strict=True):
            from_variance.append((g_h * weights.unsqueeze(-1)).sum(1))  # sum_k dvar_k G_k h
            scaled = (weights.unsqueeze(-1) * chunk.unsqueeze(1)).reshape(-1, k * c)  # dvar_k h: t, K*C
            grad_gram.addmm_(scaled.T, chunk)
        if from_variance:
            grad_h = grad_h + torch.cat(from_variance) * (2.0 / c)
        return grad_h, grad_mix, (grad_gram / c).view(k, c, c), None, None
