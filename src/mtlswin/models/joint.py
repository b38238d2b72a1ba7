"""``joint_swin`` and ``joint_swin_tiny``: the Joint-SwinTransformer (the paper's method 2).

::

    a = encoder(x).bottleneck          # trainable (ImageNet-initialised), B, h, w, C
    b = frozen_encoder(x).bottleneck   # segmentation-trained Swin-Unet encoder, frozen, B, h, w, C
    logits = head(mean_tokens(cat([a, b], channels)))   # Linear(2C, n_classes)

Unlike the authors' code, the frozen encoder is always in eval mode (no stochastic depth), even
after ``model.train()``, and loading its weights fails on any missing or unexpected key.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from mtlswin.models.configs import TEST_ENCODER, JointSwinConfig, JointSwinTinyConfig
from mtlswin.models.encoder import SwinEncoder, nhwc_to_nchw
from mtlswin.models.initialise import apply_pretrained, load_encoder_weights
from mtlswin.models.load_report import LoadReport
from mtlswin.models.registry import Capabilities, register_model
from mtlswin.models.tasks import select_tasks

__all__ = ["JointSwin", "build_joint_swin", "build_joint_swin_tiny"]

# The head pools two encoders (two Grad-CAM layers): neither one Linear on one encoder's features nor CAM alignment.
_CAPABILITIES = Capabilities(frozen_encoder=True, simmim_pretrain=True)
# Every model of this family: the test sizes and capabilities above.
_register = partial(register_model, test=TEST_ENCODER, capabilities=_CAPABILITIES)


class JointSwin(nn.Module):
    """Trainable + frozen Swin encoders, bottlenecks concatenated ``[trainable, frozen]``, GAP, Linear(2C).

    ``forward(x: (B, 1, H, W)) -> {"logits": (B, n_classes)}``.
    """

    tasks = ("cls",)

    def __init__(self, config: JointSwinConfig) -> None:
        super().__init__()
        self.encoder = SwinEncoder(**config.encoder_kwargs(), **config.input_kwargs())
        self.frozen_encoder = SwinEncoder(**config.encoder_kwargs(), **config.input_kwargs())
        self.frozen_encoder.requires_grad_(False)
        self.frozen_encoder.eval()
        self.head = nn.Linear(2 * self.encoder.num_features, config.n_classes)

    def train(self, mode: bool = True) -> JointSwin:
        """Set train/eval mode; the frozen encoder stays in eval mode either way."""
        super().train(mode)
        self.frozen_encoder.eval()
        return self

    def forward(self, x: torch.Tensor, tasks: Iterable[str] | str | None = None) -> dict[str, torch.Tensor]:
        select_tasks(self.tasks, tasks, type(self).__name__)  # only "cls": checked for a uniform interface
        trainable = self.encoder(x).bottleneck  # B, h, w, C
        frozen = self.frozen_encoder(x).bottleneck  # B, h, w, C (no parameter of it requires grad)
        pooled = torch.cat([trainable, frozen], dim=-1).mean(dim=(1, 2))  # B, 2C
        return {"logits": self.head(pooled)}

    def load_frozen_encoder(self, path: str | Path) -> LoadReport:
        """Load the frozen encoder from our ``swin_unet``/``mtl_swin_unet`` checkpoint (file or run folder)
        or an authors' Swin-Unet / MTL-Swin-Unet ``.pth``; raises ``ValueError`` on any missing or
        unexpected encoder key or shape mismatch. Decoder and head weights of the file are ignored (reported).
        """
        report = load_encoder_weights(self.frozen_encoder, path)
        self.frozen_encoder.requires_grad_(False)
        self.frozen_encoder.eval()
        return report

    def cam_target_layers(self, stage: int | None = None) -> list[nn.Module]:
        """Grad-CAM layers: the bottleneck LayerNorms of both encoders, [trainable, frozen] (``stage``: the
        output of that stage of both encoders).

        The head pools both halves of the concatenated feature, so both contribute to the logit. The
        frozen encoder has no parameter requiring grad; its activations still carry gradients once the
        input requires grad, which :func:`mtlswin.explain.gradcam.compute_cam` arranges.
        """
        return [self.encoder.cam_layer(stage), self.frozen_encoder.cam_layer(stage)]

    cam_reshape = staticmethod(nhwc_to_nchw)


def _build(config: JointSwinConfig) -> nn.Module:
    model = apply_pretrained(JointSwin(config), config)
    if config.frozen_encoder:
        model.load_frozen_encoder(config.frozen_encoder)
    return model


@_register("joint_swin", JointSwinConfig, description="Joint-SwinTransformer, depths 2-2-2-2")
def build_joint_swin(config: JointSwinConfig) -> nn.Module:
    return _build(config)


@_register("joint_swin_tiny", JointSwinTinyConfig, description="Joint-SwinTransformer, Swin-T")
def build_joint_swin_tiny(config: JointSwinTinyConfig) -> nn.Module:
    return _build(config)
