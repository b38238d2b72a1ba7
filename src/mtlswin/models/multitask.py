"""``swin_unet`` and ``mtl_swin_unet``: one Swin encoder, Swin-Unet decoder(s), task heads.

MTL-Swin-Unet (the paper's method 1)::

    features = encoder(x)                               # skips + norm(bottleneck), NHWC
    logits   = head(mean_tokens(features.bottleneck))   # "cls"
    pixels   = decoder(features)                        # B, C, H, W  (once per decoder)
    seg      = seg_head(pixels)   1x1 conv, no bias     # "seg": B, n_seg_classes, H, W logits
    rec      = rec_head(pixels)   1x1 conv, no bias     # "rec": B, 1, H, W, no activation

(The 1x1 convolutions are per-pixel ``nn.Linear`` layers, stacked and handed to the decoder, which
fuses them with its final expansion and LayerNorm so the full-resolution feature map is never
built; the values are those of the 1x1 convs, see ``mtlswin.models.expand_heads``.)

``decoder="shared"`` (the authors' layout) builds ONE decoder feeding both 1x1 heads and runs it once
per forward (their code runs it twice on the same input, with the same result); ``"separate"``
builds one decoder per pixel task. Decoders live in ``model.decoders`` keyed by the tasks they feed
(``"seg"``, ``"rec"`` or ``"seg+rec"``). ``swin_unet`` is the same model with the single task ``seg``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from mtlswin.models.configs import TEST_UNET, MTLSwinUnetConfig, SwinUnetConfig
from mtlswin.models.decoder import SwinUnetDecoder
from mtlswin.models.encoder import SwinEncoder, nhwc_to_nchw
from mtlswin.models.initialise import apply_pretrained
from mtlswin.models.registry import Capabilities, register_model
from mtlswin.models.tasks import select_tasks

__all__ = ["MTLSwinUnet", "SwinUnet", "build_mtl_swin_unet", "build_swin_unet"]

_PIXEL_TASKS = ("seg", "rec")


class SwinUnet(nn.Module):
    """Swin encoder + Swin-Unet decoder(s) + the heads of ``tasks`` (subset of ``("cls", "seg", "rec")``)."""

    def __init__(self, config: SwinUnetConfig, tasks: tuple[str, ...], decoder: str = "shared") -> None:
        super().__init__()
        self.tasks = tuple(t for t in ("cls", "seg", "rec") if t in tasks)
        self.encoder = SwinEncoder(**config.encoder_kwargs(), **config.input_kwargs())
        pixel_tasks = [t for t in _PIXEL_TASKS if t in self.tasks]
        groups = [pixel_tasks] if decoder == "shared" else [[t] for t in pixel_tasks]
        self.decoders = nn.ModuleDict(
            {
                "+".join(group): SwinUnetDecoder(**config.encoder_kwargs(), decoder_depths=config.decoder_depths)
                for group in groups
            }
        )
        width = config.embed_dim
        if "cls" in self.tasks:
            self.head = nn.Linear(self.encoder.num_features, config.n_classes)
        # 1x1 convolutions written as per-pixel Linear layers (same weights, shape (out, C) instead of
        # (out, C, 1, 1)): they run on the decoder's channels-last output before it is rearranged.
        if "seg" in self.tasks:
            self.seg_head = nn.Linear(width, config.n_seg_classes, bias=False)
        if "rec" in self.tasks:
            self.rec_head = nn.Linear(width, 1, bias=False)

    def forward(self, x: torch.Tensor, tasks: Iterable[str] | str | None = None) -> dict[str, torch.Tensor]:
        """``(B, 1, H, W)`` -> dict with ``logits (B, n_classes)``, ``seg (B, n_seg, H, W)``, ``rec (B, 1, H, W)``.

        ``tasks`` (default: all of ``self.tasks``) limits the outputs: a decoder runs only if one of its
        heads is asked for (``tasks=("cls",)`` runs no decoder). The outputs equal those of the full forward.
        """
        tasks = select_tasks(self.tasks, tasks, type(self).__name__)
        features = self.encoder(x)
        out: dict[str, torch.Tensor] = {}
        if "cls" in tasks:
            out["logits"] = self.head(features.bottleneck.mean(dim=(1, 2)))
        for group, decoder in self.decoders.items():
            group_tasks = group.split("+")
            if not any(task in tasks for task in group_tasks):
                continue  # nobody asked for this decoder's heads: it does not run
            heads = [self.seg_head if task == "seg" else self.rec_head for task in group_tasks]
            # The heads' weights stacked: the decoder runs once and feeds every head in one pass. A shared
            # decoder asked for one head still computes both (the extra head row costs next to nothing
            # and keeps the values bit-identical to the full forward's).
            weight = heads[0].weight if len(heads) == 1 else torch.cat([h.weight for h in heads])
            maps = decoder(features, head_weight=weight)  # B, sum(n), H, W
            chunks = maps.split([h.out_features for h in heads], dim=1)
            out.update({t: c.contiguous() for t, c in zip(group_tasks, chunks, strict=True) if t in tasks})
        return out


class MTLSwinUnet(SwinUnet):
    """:class:`SwinUnet` with a classification task: adds the Grad-CAM hooks of the contract."""

    def cam_target_layers(self, stage: int | None = None) -> list[nn.Module]:
        """Grad-CAM layer: the bottleneck LayerNorm, whose tokens the classifier averages (= CAM of the head);
        ``stage``: the output of that encoder stage instead (the same layer as for ``swin``, so maps compare)."""
        return [self.encoder.cam_layer(stage)]

    cam_reshape = staticmethod(nhwc_to_nchw)


@register_model(
    "swin_unet",
    SwinUnetConfig,
    test=TEST_UNET,
    description="Swin-Unet segmentation",
    capabilities=Capabilities(simmim_pretrain=True),
)
def build_swin_unet(config: SwinUnetConfig) -> nn.Module:
    return apply_pretrained(SwinUnet(config, tasks=("seg",)), config)


@register_model(
    "mtl_swin_unet",
    MTLSwinUnetConfig,
    test=TEST_UNET,
    description="MTL-Swin-Unet (cls+seg | cls+rec | cls+seg+rec)",
    # with a "cls" task (the default): GAP + one Linear head on the bottleneck, as swin
    capabilities=Capabilities(linear_head=True, cam_align=True, simmim_pretrain=True),
)
def build_mtl_swin_unet(config: MTLSwinUnetConfig) -> nn.Module:
    model = MTLSwinUnet(config, tasks=tuple(config.tasks.split("+")), decoder=config.decoder)
    return apply_pretrained(model, config)
