"""``swin`` and ``swin_tiny``: the plain Swin Transformer classifier of Table 1.

``logits = Linear(mean over tokens of norm(bottleneck))``: the authors' ``SwinTransformerSys`` forward
(no CLS token), on timm's Swin stages.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch
from torch import nn

from mtlswin.models.configs import TEST_ENCODER, SwinClassifierConfig, SwinTinyConfig
from mtlswin.models.encoder import SwinEncoder, nhwc_to_nchw
from mtlswin.models.initialise import apply_pretrained
from mtlswin.models.registry import Capabilities, register_model
from mtlswin.models.tasks import select_tasks

__all__ = ["SwinClassifier", "build_swin", "build_swin_tiny"]

# GAP + one Linear head on the bottleneck tokens that its one Grad-CAM layer outputs; a Swin encoder to pretrain.
_CAPABILITIES = Capabilities(linear_head=True, cam_align=True, simmim_pretrain=True)
# Every model of this family: the test sizes and capabilities above.
_register = partial(register_model, test=TEST_ENCODER, capabilities=_CAPABILITIES)


class SwinClassifier(nn.Module):
    """Swin encoder -> GAP over the ``(h, w)`` tokens of the normalised bottleneck -> Linear.

    ``forward(x: (B, 1, H, W)) -> {"logits": (B, n_classes)}``.
    """

    tasks = ("cls",)

    def __init__(self, config: SwinClassifierConfig) -> None:
        super().__init__()
        self.encoder = SwinEncoder(**config.encoder_kwargs(), **config.input_kwargs())
        self.head = nn.Linear(self.encoder.num_features, config.n_classes)

    def forward(self, x: torch.Tensor, tasks: Iterable[str] | str | None = None) -> dict[str, torch.Tensor]:
        select_tasks(self.tasks, tasks, type(self).__name__)  # only "cls": checked for a uniform interface
        tokens = self.encoder(x).bottleneck  # B, h, w, C
        return {"logits": self.head(tokens.mean(dim=(1, 2)))}

    def cam_target_layers(self, stage: int | None = None) -> list[nn.Module]:
        """Grad-CAM layer: the bottleneck LayerNorm, the last spatial map before GAP + Linear (``stage``: the
        output of that encoder stage instead, a finer map; see :meth:`SwinEncoder.cam_layer`).

        Its output is exactly what the classifier pools, so Grad-CAM there equals the class activation
        map (CAM) of the GAP-linear head: the most faithful map this architecture has. (The last
        block's ``norm1``, the usual pytorch-grad-cam choice for Swin, sits before that block's
        attention and MLP, so it explains an earlier representation.)
        """
        return [self.encoder.cam_layer(stage)]

    cam_reshape = staticmethod(nhwc_to_nchw)


@_register("swin", SwinClassifierConfig, description="Swin Transformer classifier, depths 2-2-2-2")
def build_swin(config: SwinClassifierConfig) -> nn.Module:
    return apply_pretrained(SwinClassifier(config), config)


@_register("swin_tiny", SwinTinyConfig, description="Swin-T classifier, depths 2-2-6-2")
def build_swin_tiny(config: SwinTinyConfig) -> nn.Module:
    return apply_pretrained(SwinClassifier(config), config)
