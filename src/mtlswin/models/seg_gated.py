"""``seg_gated_swin``: segmentation for classification (Hooper et al., NeurIPS 2023; Saab et al., MLHC 2022).

::

    p  = 1 - softmax(segmenter(x).seg)[:, background]      # frozen trained Swin-Unet, B, 1, H, W in [0, 1]
    g  = max(maxpool_{2r+1}(p), floor)                      # dilation by r pixels (square neighbourhood)
    logits = classifier(x * g)                              # trainable ``swin`` at the same sizes, B, n_classes

Design. The label of the phantom (the ``hypodensity`` marker) lives INSIDE the hematoma, while the
spurious atrophy cue lives in the brain outside it (ventricles, sulci). A two-stage model first asks a
segmentation network, trained on the masks alone, where the lesion is, then lets the classifier see only
that region and a margin of ``gate_radius`` pixels around it (the dilation keeps the lesion's border and
absorbs small segmentation errors). With ``gate_floor = 0`` (the default) a pixel farther than
``gate_radius`` from every predicted lesion pixel is multiplied by ~0, so the classifier cannot use the cue
by construction: the mask-guided prior is enforced at the input instead of through a loss. A floor > 0
(e.g. 0.1) lets a faint context through, trading that guarantee for context a real reader would use.
The segmenter is always in eval mode, has no trainable parameter and runs under ``torch.no_grad``: the
gate is a constant of the classifier's input (no gradient flows into or through the segmenter).

Layout: ``model.encoder`` + ``model.head`` are the trainable classifier (as in ``swin``: GAP over the
normalised bottleneck, Linear), so Grad-CAM, ``pretrained`` and DFR treat it like ``swin``;
``model.segmenter`` is the frozen Swin-Unet (``tasks = ("seg",)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mtlswin.models.checkpoint import read_checkpoint
from mtlswin.models.configs import TEST_UNET, SegGatedSwinConfig, SwinUnetConfig
from mtlswin.models.encoder import SwinEncoder, nhwc_to_nchw
from mtlswin.models.initialise import apply_pretrained
from mtlswin.models.load_report import LoadReport
from mtlswin.models.multitask import SwinUnet
from mtlswin.models.registry import Capabilities, register_model
from mtlswin.models.tasks import select_tasks

__all__ = ["SegGatedSwin", "build_seg_gated_swin", "dilate", "load_segmenter"]

# Sizes the saved segmenter must share with this model (img_size too: the gate is a pixel map of the input).
_SIZES = ("img_size", "patch_size", "window_size", "embed_dim", "depths", "num_heads", "mlp_ratio", "qkv_bias")


def dilate(prob: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey-scale dilation of ``prob (B, 1, H, W)``: the max over the ``(2r+1) x (2r+1)`` square around each pixel."""
    if radius == 0:
        return prob
    return F.max_pool2d(prob, kernel_size=2 * radius + 1, stride=1, padding=radius)


class SegGatedSwin(nn.Module):
    """Frozen Swin-Unet -> dilated lesion probability gates the image -> trainable Swin classifier.

    ``forward(x: (B, 1, H, W)) -> {"logits": (B, n_classes)}``; :meth:`gate` gives the gate ``(B, 1, H, W)``.
    """

    tasks = ("cls",)

    def __init__(self, config: SegGatedSwinConfig) -> None:
        super().__init__()
        self.gate_radius, self.gate_floor = int(config.gate_radius), float(config.gate_floor)
        self.encoder = SwinEncoder(**config.encoder_kwargs(), **config.input_kwargs())
        self.head = nn.Linear(self.encoder.num_features, config.n_classes)
        seg_config = SwinUnetConfig(
            **{f.name: getattr(config, f.name) for f in dataclasses.fields(SwinUnetConfig)},
        )
        seg_config.input_mean = 0.0 if config.segmenter_input_mean is None else config.segmenter_input_mean
        seg_config.input_std = 1.0 if config.segmenter_input_std is None else config.segmenter_input_std
        seg_config.pretrained = None
        self.segmenter = SwinUnet(seg_config, ("seg",))
        self._freeze()

    def _freeze(self) -> None:
        self.segmenter.requires_grad_(False)
        self.segmenter.eval()

    def train(self, mode: bool = True) -> SegGatedSwin:
        """Set train/eval mode; the segmenter stays in eval mode either way."""
        super().train(mode)
        self.segmenter.eval()
        return self

    @torch.no_grad()
    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """``g = max(dilate(p_lesion, gate_radius), gate_floor)``, ``(B, 1, H, W)``; no gradient."""
        seg = self.segmenter(x, tasks=("seg",))["seg"]  # B, n_seg, H, W logits
        lesion = 1.0 - seg.float().softmax(dim=1)[:, :1]  # B, 1, H, W: probability of any non-background class
        g = dilate(lesion, self.gate_radius)
        return g.clamp_min(self.gate_floor).to(x.dtype) if self.gate_floor > 0 else g.to(x.dtype)

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input, ``(B, C)``: GAP of the classifier's normalised bottleneck on the gated image."""
        return self.encoder(x * self.gate(x)).bottleneck.mean(dim=(1, 2))  # B, C

    def forward(self, x: torch.Tensor, tasks: Iterable[str] | str | None = None) -> dict[str, torch.Tensor]:
        select_tasks(self.tasks, tasks, type(self).__name__)  # only "cls": checked for a uniform interface
        return {"logits": self.head(self.pooled_features(x))}

    def cam_target_layers(self, stage: int | None = None) -> list[nn.Module]:
        """Grad-CAM layer: the trainable classifier's bottleneck LayerNorm (``stage``: that encoder stage)."""
        return [self.encoder.cam_layer(stage)]

    cam_reshape = staticmethod(nhwc_to_nchw)


def _segmenter_state(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our ``swin_unet`` / ``mtl_swin_unet`` state -> the keys of a ``SwinUnet(tasks=("seg",))``, and the ignored keys."""
    decoders = {k.split(".")[1] for k in state if k.startswith("decoders.")}
    seg_decoder = [name for name in decoders if "seg" in name.split("+")]
    if not seg_decoder or "seg_head.weight" not in state:
        raise ValueError(f"{str(path)!r} has no segmentation decoder and head: give a trained swin_unet run")
    prefix = f"decoders.{seg_decoder[0]}."
    mapped, ignored = {}, []
    for key, value in state.items():
        if key.startswith(("encoder.", "seg_head.")):
            mapped[key] = value
        elif key.startswith(prefix):
            mapped["decoders.seg." + key.removeprefix(prefix)] = value
        else:
            ignored.append(key)
    return mapped, ignored


def load_segmenter(segmenter: nn.Module, path: str | Path, config: SegGatedSwinConfig | None = None) -> LoadReport:
    """Load a ``SwinUnet(tasks=("seg",))`` from our ``swin_unet`` / ``mtl_swin_unet`` checkpoint (file or run folder).

    Strict: a missing, unexpected or mis-shaped key raises, as does a checkpoint trained at other sizes
    than ``config`` (the message names the ``--set`` overrides that fit). Classification / reconstruction
    weights of the file are ignored (reported). A missing path is a ``FileNotFoundError`` naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"frozen segmenter {str(path)!r} does not exist; give a trained swin_unet run folder or its "
            "model.safetensors (train configs/demo/swin_unet.yaml first)"
        )
    state, meta = read_checkpoint(path)
    saved = meta["config"]
    if config is not None:
        differ = [k for k in _SIZES if k in saved and _plain(saved[k]) != _plain(getattr(config, k))]
        if differ:
            fix = " ".join(f"--set model.{k}={_plain(saved[k])}" for k in _SIZES if k in saved)
            raise ValueError(f"segmenter {str(path)!r} ({meta['model']}) was trained at other sizes ({', '.join(differ)}); "
                             f"build seg_gated_swin at its sizes: {fix}")  # fmt: skip
    mapped, ignored = _segmenter_state(state, path)
    report = LoadReport(f"{path} ({meta['model']}, segmenter)")
    own = segmenter.state_dict()
    report.ignored = dict.fromkeys(ignored, "not part of the segmenter")
    report.missing = [k for k in own if k not in mapped]
    report.unexpected = [k for k in mapped if k not in own]
    report.loaded = [k for k in mapped if k in own]
    report.used = list(report.loaded)
    bad = [k for k in report.loaded if mapped[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"segmenter {str(path)!r}: shapes differ for {bad[:5]}; build the model at the file's sizes")
    report.check(allow_partial=False)
    segmenter.load_state_dict(mapped, strict=True)
    segmenter.encoder.input_norm.mean = float(saved.get("input_mean", 0.0))  # the input standardisation it was
    segmenter.encoder.input_norm.std = float(saved.get("input_std", 1.0))  # trained with (no state in the weights)
    return report


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


@register_model(
    "seg_gated_swin",
    SegGatedSwinConfig,
    test={**TEST_UNET, "gate_radius": 2},
    description="segmentation for classification: frozen Swin-Unet gates the input of a Swin classifier",
    # its classifier is swin's (pooled features of the gated image); the segmenter comes from frozen_encoder
    capabilities=Capabilities(linear_head=True, cam_align=True, frozen_encoder=True),
)
def build_seg_gated_swin(config: SegGatedSwinConfig) -> nn.Module:
    """Build the model; with ``frozen_encoder`` set, the segmenter's weights (and input standardisation) come
    from that file, and ``config.segmenter_input_mean/std`` are filled from it so a saved model rebuilds alike."""
    model = apply_pretrained(SegGatedSwin(config), config)
    if config.frozen_encoder:
        load_segmenter(model.segmenter, config.frozen_encoder, config)
        norm = model.segmenter.encoder.input_norm
        for field, found in (("segmenter_input_mean", norm.mean), ("segmenter_input_std", norm.std)):
            given = getattr(config, field)
            if given is not None and abs(float(given) - found) > 1e-6:
                raise ValueError(f"model.{field}={given} differs from the segmenter's {found:g} saved in "
                                 f"{config.frozen_encoder}; leave {field} unset")  # fmt: skip
            setattr(config, field, found)  # saved with this model, so load_model rebuilds the same gate
        model._freeze()
    return model
