"""The Swin-Unet decoder (Cao et al. 2021) for any number of stages, on timm's Swin blocks.

Layout and state-dict names follow the Swin-Unet / authors' code so their checkpoints map 1:1
(``layers_up.*``, ``concat_back_dim.*``, ``norm_up``, ``up``). For an encoder of ``n`` stages with
widths ``d_k = C * 2**k`` and resolutions ``r_k``::

    x = bottleneck                                  # B, r_{n-1}, r_{n-1}, d_{n-1} (normalised)
    x = layers_up[0](x)                             # PatchExpand -> B, r_{n-2}, r_{n-2}, d_{n-2}
    for i in 1..n-1, k = n-1-i:
        x = concat_back_dim[i](cat([x, skips[k]]))  # Linear 2 d_k -> d_k
        x = layers_up[i](x)                         # Swin blocks at r_k, then PatchExpand if i < n-1
    x = up(norm_up(x))                              # FinalPatchExpand: B, r_0*p, r_0*p, C   (p = patch size)
    return x as NCHW                                # B, C, H, W

timm has Swin blocks but no patch-expanding layer, so ``PatchExpand`` / ``FinalPatchExpand`` are
written here (a Linear and a fixed rearrange each).

The task heads (1x1 convolutions) can be handed to the decoder (``decoder(features, head_weight)``):
it then runs the final expansion, its LayerNorm and the heads as one function
(:meth:`FinalPatchExpand.project`) that never builds the full-resolution ``C``-channel map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import calculate_drop_path_rates
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn

from mtlswin.models.attention_path import AttentionPath
from mtlswin.models.encoder import SwinFeatures
from mtlswin.models.expand_heads import expand_norm_heads
from mtlswin.models.sizes import check_swin_sizes

__all__ = ["DecoderStage", "FinalPatchExpand", "PatchExpand", "SwinUnetDecoder", "expand_tokens", "ungroup_pixels"]


def expand_tokens(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Move channels into space: ``(B, h, w, s*s*c) -> (B, h*s, w*s, c)``.

    Same order as einops ``'b h w (p1 p2 c) -> b (h p1) (w p2) c'`` with ``p1 = p2 = s``.
    """
    b, h, w, channels = x.shape
    c = channels // (scale * scale)
    x = x.reshape(b, h, w, scale, scale, c).permute(0, 1, 3, 2, 4, 5)  # B, h, p1, w, p2, c
    return x.reshape(b, h * scale, w * scale, c)


class PatchExpand(nn.Module):
    """2x up-sampling: Linear ``C -> 2C`` (no bias), rearrange to ``(2h, 2w, C/2)``, LayerNorm ``C/2``. NHWC."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.expand = nn.Linear(dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(expand_tokens(self.expand(x), 2))  # B, 2h, 2w, C/2


class FinalPatchExpand(nn.Module):
    """``scale``x up-sampling back to pixels: Linear ``C -> scale**2 C`` (no bias), rearrange, LayerNorm ``C``.

    Swin-Unet's ``FinalPatchExpand_X4`` is this with ``scale = 4`` (the patch size).
    """

    def __init__(self, dim: int, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, scale * scale * dim, bias=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(expand_tokens(self.expand(x), self.scale))  # B, h*s, w*s, C

    def project(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``(B, h, w, C)`` tokens -> ``(B, n, h*s, w*s)``: this layer followed by a per-pixel ``Linear(C, n)``
        without bias (``weight`` ``(n, C)``, i.e. a 1x1 convolution), the values of ``conv(forward(x))``.

        Computed by :func:`~mtlswin.models.expand_heads.expand_norm_heads`, which never builds the
        full-resolution ``C``-channel map (at the paper's size the largest tensor of the model); only
        the ``n`` head outputs are rearranged into pixels.
        """
        b, h, w, c = x.shape
        out = expand_norm_heads(
            x.reshape(b * h * w, c), self.expand.weight, self.norm.weight, self.norm.bias, weight, self.norm.eps
        )
        return ungroup_pixels(out.view(b, h, w, self.scale**2, weight.shape[0]), self.scale)


class DecoderStage(nn.Module):
    """Swin blocks at one resolution (NHWC), then an optional :class:`PatchExpand` (``upsample``)."""

    def __init__(
        self,
        dim: int,
        resolution: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: Sequence[float],
        upsample: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *[
                SwinTransformerBlock(
                    dim=dim,
                    input_resolution=(resolution, resolution),
                    num_heads=num_heads,
                    window_size=window_size,
                    shift_size=0 if j % 2 == 0 else window_size // 2,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=drop_path[j],
                )
                for j in range(depth)
            ]
        )
        self.upsample = PatchExpand(dim) if upsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.blocks(x))


class SwinUnetDecoder(AttentionPath, nn.Module):
    """Swin-Unet decoder mirroring a :class:`~mtlswin.models.encoder.SwinEncoder` of ``len(depths)`` stages.

    ``decoder_depths`` gives the blocks of ``layers_up[1..n-1]`` (levels ``n-2 .. 0``); ``None`` mirrors the
    encoder (``depths[n-2], ..., depths[0]``), as the authors' code does. Output: ``(B, embed_dim, img, img)``.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 4,
        window_size: int = 7,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.2,
        qkv_bias: bool = True,
        decoder_depths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        res = check_swin_sizes(img_size, patch_size, window_size, depths, num_heads, embed_dim)
        n = len(depths)
        if n < 2:
            raise ValueError(f"the Swin-Unet decoder needs at least 2 encoder stages, got depths {tuple(depths)}")
        level_depths = self._level_depths(depths, decoder_depths)  # blocks per level k = 0..n-2
        enc_rates = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        dims = [embed_dim * 2**k for k in range(n)]
        self.layers_up = nn.ModuleList([PatchExpand(dims[n - 1])])
        self.concat_back_dim = nn.ModuleList([nn.Identity()])
        for i in range(1, n):
            k = n - 1 - i
            rates = [enc_rates[k][min(j, len(enc_rates[k]) - 1)] for j in range(level_depths[k])]
            self.concat_back_dim.append(nn.Linear(2 * dims[k], dims[k]))
            self.layers_up.append(
                DecoderStage(
                    dims[k], res[k], level_depths[k], num_heads[k], window_size, mlp_ratio, qkv_bias, rates, i < n - 1
                )
            )
        self.norm_up = nn.LayerNorm(embed_dim)
        self.up = FinalPatchExpand(embed_dim, patch_size)

    @staticmethod
    def _level_depths(depths: Sequence[int], decoder_depths: Sequence[int] | None) -> list[int]:
        n = len(depths)
        if decoder_depths is None:
            return [int(d) for d in depths[: n - 1]]
        if len(decoder_depths) != n - 1 or any(int(d) < 1 for d in decoder_depths):
            raise ValueError(
                f"decoder_depths {tuple(decoder_depths)} must hold {n - 1} positive block counts "
                f"(one per decoder stage after the first, for depths {tuple(depths)}), or be None to mirror the encoder"
            )
        return [int(d) for d in reversed(decoder_depths)]

    def forward_tokens(self, features: SwinFeatures) -> torch.Tensor:
        """:class:`SwinFeatures` -> ``(B, r_0, r_0, C)``: the decoder up to ``norm_up`` (before the final expansion)."""
        skips = features.skips
        n = len(skips)
        self.match_attention(features.bottleneck)  # SDPA off the CPU, the explicit softmax on it
        x = self.layers_up[0](features.bottleneck)
        for i in range(1, n):
            x = torch.cat([x, skips[n - 1 - i]], dim=-1)  # B, r_k, r_k, 2 d_k
            x = self.layers_up[i](self.concat_back_dim[i](x))
        return self.norm_up(x)

    def forward(self, features: SwinFeatures, head_weight: torch.Tensor | None = None) -> torch.Tensor:
        """:class:`SwinFeatures` -> ``(B, embed_dim, H, W)`` pixel features (before the 1x1 heads).

        With ``head_weight`` (``(n, embed_dim)``, the 1x1 heads' weights stacked): ``(B, n, H, W)``, the
        heads applied to those features, computed by :meth:`FinalPatchExpand.project` without holding
        the full-resolution feature map.
        """
        tokens = self.forward_tokens(features)
        if head_weight is not None:
            return self.up.project(tokens, head_weight)
        return self.up(tokens).permute(0, 3, 1, 2)


def ungroup_pixels(grouped: torch.Tensor, scale: int) -> torch.Tensor:
    """``(B, h, w, s*s, c) -> (B, c, h*s, w*s)``: group ``p1*s + p2`` of token ``(i, j)`` is pixel ``(i*s+p1, j*s+p2)``."""
    b, h, w, _, c = grouped.shape
    x = grouped.view(b, h, w, scale, scale, c).permute(0, 5, 1, 3, 2, 4)  # B, c, h, p1, w, p2
    return x.reshape(b, c, h * scale, w * scale)
