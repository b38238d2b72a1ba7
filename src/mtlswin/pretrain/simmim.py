"""SimMIM masked-image modelling on the project's Swin encoder (Xie et al., CVPR 2022).

::

    mask   = random_mask(B, img / mask_patch, ratio)        # B, m, m in {0, 1}; 1 = masked (exactly round(ratio*m*m))
    tokens = encoder.embed(x)                               # B, r0, r0, C  (r0 = img / patch_size)
    w      = upsample(mask, r0 / m)                         # B, r0, r0, 1
    tokens = tokens * (1 - w) + mask_token * w              # a learnable (1, 1, 1, C) token replaces masked patches
    z      = encoder.forward_tokens(tokens).bottleneck      # B, h, h, C_last (h = img / stride)
    pred   = pixel_shuffle(conv1x1(z), stride)              # B, in_chans, img, img; conv1x1: C_last -> stride**2 * in_chans
    loss   = sum(|pred - target| * M) / (sum(M) * in_chans) # M: the mask at pixel resolution (masked pixels only)

``stride = patch_size * 2**(n_stages - 1)``, the encoder's total down-sampling, as in SimMIM's Swin decoder.
The target is the encoder's standardised input ``(x - input_mean) / input_std`` (SimMIM regresses the
normalised pixels), so the loss is in units of the corpus standard deviation. ``mask_patch`` must be a
multiple of the encoder's ``patch_size`` and divide ``img_size``.
"""

from __future__ import annotations

import torch
from torch import nn

from mtlswin.models.encoder import SwinEncoder

__all__ = ["SimMIM", "default_mask_patch", "masked_l1", "random_mask"]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the masked pixels only.

    ``pred``, ``target``: ``(B, C, H, W)``; ``mask``: ``(B, 1, H, W)`` or ``(B, H, W)``, 1 = masked (counted),
    0 = visible (ignored). ``sum(|pred - target| * mask) / (sum(mask) * C)``; 0 when nothing is masked.
    """
    if mask.ndim == 3:
        mask = mask[:, None]
    mask = mask.to(pred.dtype)
    per_pixel = (pred - target).abs() * mask
    return per_pixel.sum() / (mask.sum() * pred.shape[1]).clamp_min(1e-5)


def random_mask(batch: int, side: int, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(batch, side, side)`` float mask, exactly ``round(ratio * side**2)`` ones (masked cells) per sample."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {ratio}")
    n = side * side
    k = max(1, min(n - 1, round(ratio * n)))
    order = torch.rand(batch, n, generator=generator).argsort(dim=1)
    mask = torch.zeros(batch, n)
    mask.scatter_(1, order[:, :k], 1.0)
    return mask.view(batch, side, side)


class SimMIM(nn.Module):
    """A :class:`SwinEncoder` with a mask token and SimMIM's light pixel head (see the module docstring).

    ``forward(x, mask) -> (loss, pred)``: ``x (B, in_chans, H, W)`` in [0, 1], ``mask (B, m, m)`` (1 = masked).
    Only ``encoder`` is exported; ``mask_token`` and ``head`` are pretraining-only.
    """

    def __init__(self, encoder: SwinEncoder, mask_patch: int, in_chans: int = 1) -> None:
        super().__init__()
        patch, img = encoder.patch_size, encoder.img_size
        if mask_patch % patch or img % mask_patch:
            raise ValueError(
                f"mask_patch_size {mask_patch} must be a multiple of the encoder's patch_size {patch} and divide "
                f"img_size {img}; e.g. {patch * 2 ** (len(encoder.depths) - 1)}"
            )
        self.encoder = encoder
        self.mask_patch, self.in_chans = int(mask_patch), int(in_chans)
        self.stride = patch * 2 ** (len(encoder.depths) - 1)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, encoder.feature_dims[0]))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Sequential(
            nn.Conv2d(encoder.num_features, self.stride**2 * in_chans, kernel_size=1), nn.PixelShuffle(self.stride)
        )

    @property
    def mask_side(self) -> int:
        """Cells of the mask along a side: ``img_size / mask_patch``."""
        return self.encoder.img_size // self.mask_patch

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the head regresses: the encoder's standardised input."""
        return self.encoder.input_norm(x)

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` prediction of every pixel from the partly masked image."""
        tokens = self.encoder.embed(x)  # B, r0, r0, C
        scale = tokens.shape[1] // mask.shape[-1]
        w = mask.to(tokens.dtype).repeat_interleave(scale, 1).repeat_interleave(scale, 2)[..., None]  # B, r0, r0, 1
        tokens = tokens * (1 - w) + self.mask_token.to(tokens.dtype) * w
        z = self.encoder.forward_tokens(tokens).bottleneck.permute(0, 3, 1, 2)  # B, C_last, h, h
        return self.head(z)

    def pixel_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """``(B, m, m)`` -> ``(B, 1, H, W)``: each mask cell spread over its ``mask_patch x mask_patch`` pixels."""
        return mask.repeat_interleave(self.mask_patch, 1).repeat_interleave(self.mask_patch, 2)[:, None]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred = self.reconstruct(x, mask)
        return masked_l1(pred, self.target(x), self.pixel_mask(mask)), pred


def default_mask_patch(value: int | None, patch: int, depths: tuple[int, ...]) -> int:
    """``mask_patch_size`` or, when None, the encoder's total stride (SimMIM's 32 px for Swin-T patch 4)."""
    return int(value) if value is not None else int(patch * 2 ** (len(depths) - 1))
