"""The Swin encoder: timm's ``SwinTransformer`` stages, exposing the skip features Swin-Unet takes.

timm puts patch merging at the START of stages 1..n-1 (the official Swin code puts it at the end of
stages 0..n-2), so the tokens "before each encoder layer" that the authors' decoder concatenates
are, in timm terms, the patch-embedding output and the outputs of ``stages[i].downsample``, taken
before ``stages[i].blocks``. The bottleneck is ``norm(last stage output)``. All tokens are NHWC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from timm.models.swin_transformer import SwinTransformer
from torch import nn

from mtlswin.models.attention_path import AttentionPath
from mtlswin.models.input_norm import InputStandardize
from mtlswin.models.sizes import check_swin_sizes

__all__ = ["SwinEncoder", "SwinFeatures", "nhwc_to_nchw"]


class SwinFeatures(NamedTuple):
    """What :class:`SwinEncoder` returns.

    ``skips[i]``: ``(B, r_i, r_i, C * 2**i)`` tokens before stage ``i``'s blocks (``r_i = img / (patch * 2**i)``).
    ``bottleneck``: ``(B, r_{n-1}, r_{n-1}, C * 2**(n-1))`` = ``norm(output of the last stage)``.
    """

    skips: list[torch.Tensor]
    bottleneck: torch.Tensor


def nhwc_to_nchw(tokens: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C) -> (B, C, H, W)``: the ``cam_reshape`` of every Swin classifier (Grad-CAM wants NCHW)."""
    return tokens.permute(0, 3, 1, 2)


class SwinEncoder(AttentionPath, nn.Module):
    """Swin Transformer v1 encoder built from timm (no hand-written attention), 1-channel input by default.

    Submodules (state-dict names): ``patch_embed`` (timm ``PatchEmbed``, NHWC output), ``stages``
    (timm's ``nn.Sequential`` of ``SwinTransformerStage``; stage ``i>0`` starts with ``downsample``),
    ``norm`` (LayerNorm of the bottleneck). Input ``(B, in_chans, img, img)`` in [0, 1], standardised first
    as ``(x - input_mean) / input_std`` (:class:`~mtlswin.models.input_norm.InputStandardize`, no state).
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
        in_chans: int = 1,
        input_mean: float = 0.0,
        input_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.input_norm = InputStandardize(input_mean, input_std)  # no state: checkpoints are unchanged
        resolutions = check_swin_sizes(img_size, patch_size, window_size, depths, num_heads, embed_dim)
        swin = SwinTransformer(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=0,
            embed_dim=embed_dim,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
        )
        # Keep timm's parts, not the whole timm model, so the state dict has no unused head and the
        # names are ours (patch_embed / stages / norm); the modules themselves are timm's.
        self.patch_embed = swin.patch_embed
        self.stages = swin.layers
        self.norm = swin.norm
        self.img_size = img_size
        self.patch_size = patch_size
        self.window_size = window_size
        self.depths = tuple(int(d) for d in depths)
        self.num_heads = tuple(int(h) for h in num_heads)
        self.feature_dims = [embed_dim * 2**i for i in range(len(depths))]
        self.resolutions = resolutions
        self.num_features = self.feature_dims[-1]

    def forward(self, x: torch.Tensor) -> SwinFeatures:
        """``(B, in_chans, H, W)`` -> :class:`SwinFeatures` (skips before each stage's blocks, normed bottleneck)."""
        return self.forward_tokens(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> standardised, patch-embedded tokens ``(B, r0, r0, C)`` (NHWC)."""
        return self.patch_embed(self.input_norm(x))

    def forward_tokens(self, x: torch.Tensor) -> SwinFeatures:
        """The stages and the bottleneck norm on patch tokens ``(B, r0, r0, C)`` (what :meth:`embed` returns;
        masked-image pretraining replaces some of them with a mask token in between)."""
        self.match_attention(x)  # SDPA off the CPU, the explicit softmax on it
        skips = []
        for stage in self.stages:
            x = stage.downsample(x)  # identity for stage 0; patch merging (B, r/2, r/2, 2C) after
            skips.append(x)
            x = stage.blocks(x)
        return SwinFeatures(skips=skips, bottleneck=self.norm(x))

    def cam_layer(self, stage: int | None = None) -> nn.Module:
        """The module whose NHWC output Grad-CAM maps: ``norm`` (the bottleneck, ``stage=None``) or the
        output of ``stages[stage].blocks`` (finer maps: stage ``i`` has ``img / (patch * 2**i)`` tokens a side)."""
        if stage is None:
            return self.norm
        if not 0 <= int(stage) < len(self.stages):
            raise ValueError(f"Grad-CAM stage {stage} does not exist: this encoder has stages 0-{len(self.stages) - 1}")
        return self.stages[int(stage)].blocks  # forward() calls downsample and blocks, never the stage itself

    def cam_resolution(self, stage: int | None = None) -> int:
        """Side of the Grad-CAM map (tokens) at ``stage`` (None: the bottleneck)."""
        return self.resolutions[-1 if stage is None else int(stage)]

    def timm_view(self) -> nn.Module:
        """A module with timm's attribute names (``patch_embed``, ``layers``) over the same submodules.

        For ``timm.models.swin_transformer.checkpoint_filter_fn``, which looks submodules up by timm
        key; registering the same modules in a second container does not copy or move them.
        """
        view = nn.Module()
        view.patch_embed = self.patch_embed
        view.layers = self.stages
        view.norm = self.norm
        return view
