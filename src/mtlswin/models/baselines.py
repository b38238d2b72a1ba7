"""CNN baselines of Table 1: U-Net, ResNet152 and Joint-Learning (U-Net + EfficientNet-b3).

All three wrap library models (segmentation_models_pytorch, timm) with no hand-written layers:

- ``unet``: ``smp.Unet`` (ResNet34 encoder by default), returns ``{"seg": (B, n_seg_classes, H, W)}``.
- ``resnet152``: timm ``resnet152`` classifier, returns ``{"logits": (B, n_classes)}``.
- ``joint_learning``: ref. [7] of the paper, U-Net segmentation and an EfficientNet-b3 classifier
  trained jointly: one ``smp.Unet`` with an EfficientNet-b3 encoder and smp's classification head
  (``aux_params``) on the deepest encoder feature; returns ``{"logits", "seg"}``.

Every model takes a float image ``(B, 1, H, W)`` in [0, 1] (no ImageNet mean/std normalisation,
as for the Swin models) and is built with ``in_channels=1``; ImageNet weights (``pretrained``:
``"timm"`` or a local file) have their RGB first convolution summed to one channel.
The U-Nets need ``H`` and ``W`` divisible by ``2 ** encoder_depth`` (32 by default).

The EfficientNet-b3 encoder is timm's (``tu-efficientnet_b3``, through smp's timm-universal
encoder): same architecture as smp's ``efficientnet-b3``, but built ``features_only`` so it holds no
unused head layers (``conv_head``/``bn2``) that would get no gradient, and timm's ImageNet weights
fit it key for key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import segmentation_models_pytorch as smp
import timm
from segmentation_models_pytorch.encoders.timm_universal import TimmUniversalEncoder
from torch import Tensor, nn

from mtlswin.models.conversion.cnn import load_weights_into
from mtlswin.models.conversion.timm_hub import resolve_pretrained
from mtlswin.models.input_norm import InputStandardize, check_input_norm
from mtlswin.models.load_report import LoadReport
from mtlswin.models.registry import register_model
from mtlswin.models.tasks import select_tasks

__all__ = [
    "JointLearning",
    "JointLearningConfig",
    "ResNetClassifier",
    "ResNetConfig",
    "UNet",
    "UNetConfig",
    "check_image",
]

# Keys of ImageNet classifiers that an encoder-only model has no place for (or of another shape).
_IMAGENET_HEADS = ("fc.", "classifier.", "conv_head.", "bn2.", "head.")
_SMP_HEADS = ("segmentation_head.", "classification_head.")


def _nearest(size: int, multiple: int) -> str:
    low = max(multiple, size // multiple * multiple)
    high = low + multiple if low < size else low
    return f"{low}" if low == high else f"{low} or {high}"


def check_image(x: Tensor, name: str, multiple: int = 1) -> None:
    """Raise a ``ValueError`` unless ``x`` is ``(B, 1, H, W)`` with ``H``, ``W`` divisible by ``multiple``."""
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} takes a (B, 1, H, W) image; got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"{name} needs H and W divisible by {multiple} (2 ** encoder_depth); got {h}x{w}. "
            f"Nearest valid sizes: H {_nearest(h, multiple)}, W {_nearest(w, multiple)} (e.g. img_size 224)."
        )


def _check_common(name: str, img_size: int, pretrained: str | None, multiple: int = 1) -> None:
    if img_size < multiple or img_size % multiple:
        raise ValueError(
            f"{name}: img_size {img_size} must be a positive multiple of {multiple} (2 ** encoder_depth); "
            f"nearest valid sizes: {_nearest(img_size, multiple)}"
        )
    if pretrained is not None and not isinstance(pretrained, str):
        raise ValueError(f"{name}: pretrained must be null, 'timm' or a file path; got {pretrained!r}")


def _check_unet_fields(name: str, encoder_depth: int, decoder_channels: tuple[int, ...]) -> None:
    if not 1 <= encoder_depth <= 5:
        raise ValueError(f"{name}: encoder_depth {encoder_depth} must be between 1 and 5")
    if len(decoder_channels) != encoder_depth:
        raise ValueError(
            f"{name}: decoder_channels {decoder_channels} needs one entry per encoder stage "
            f"({encoder_depth}), e.g. {(256, 128, 64, 32, 16)[:encoder_depth]}"
        )


@dataclass
class UNetConfig:
    """U-Net baseline (smp). Defaults: ResNet34 encoder, smp's decoder widths."""

    img_size: int = 224  # input side; a multiple of 2 ** encoder_depth
    n_seg_classes: int = 2  # background + hematoma
    encoder_name: str = "resnet34"  # any smp encoder; "tu-<name>" for any timm model
    encoder_depth: int = 5  # number of downsampling stages
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # one per stage, deepest first
    pretrained: str | None = None  # None | "timm" | path of a .pth/.safetensors (encoder-only or full U-Net)
    timm_weights: str | None = None  # timm model whose weights fit the encoder; default from encoder_name
    input_mean: float = 0.0  # (x - input_mean) / input_std inside forward (see mtlswin.models.input_norm)
    input_std: float = 1.0

    def __post_init__(self) -> None:
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        _check_unet_fields("unet", self.encoder_depth, self.decoder_channels)
        check_input_norm("unet", self.input_mean, self.input_std)
        _check_common("unet", self.img_size, self.pretrained, 2**self.encoder_depth)


@dataclass
class JointLearningConfig:
    """Joint-Learning baseline (ref. [7]): U-Net + EfficientNet-b3 classifier sharing the encoder."""

    img_size: int = 224  # input side; a multiple of 2 ** encoder_depth
    n_classes: int = 2
    n_seg_classes: int = 2
    encoder_name: str = "tu-efficientnet_b3"  # timm's EfficientNet-b3 through smp (see module docstring)
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    cls_dropout: float = 0.3  # dropout before the linear classifier (EfficientNet-b3's rate)
    pretrained: str | None = None  # None | "timm" | path (encoder-only ImageNet file or full model)
    timm_weights: str | None = None  # default from encoder_name
    input_mean: float = 0.0  # (x - input_mean) / input_std inside forward (see mtlswin.models.input_norm)
    input_std: float = 1.0

    def __post_init__(self) -> None:
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        _check_unet_fields("joint_learning", self.encoder_depth, self.decoder_channels)
        check_input_norm("joint_learning", self.input_mean, self.input_std)
        _check_common("joint_learning", self.img_size, self.pretrained, 2**self.encoder_depth)
        if not 0.0 <= self.cls_dropout < 1.0:
            raise ValueError(f"joint_learning: cls_dropout {self.cls_dropout} must be in [0, 1)")


@dataclass
class ResNetConfig:
    """ResNet152 classifier baseline (timm)."""

    arch: str = "resnet152"  # any timm ResNet: resnet18/34/50/101/152, test_resnet (tiny)
    img_size: int = 224  # nominal input side (global pooling accepts other sizes)
    n_classes: int = 2
    drop_rate: float = 0.0  # dropout before fc
    drop_path_rate: float = 0.0  # stochastic depth
    pretrained: str | None = None  # None | "timm" | path of a timm/torchvision ResNet state dict
    timm_weights: str | None = None  # timm model whose weights to use with pretrained "timm"; default arch
    input_mean: float = 0.0  # (x - input_mean) / input_std inside forward (see mtlswin.models.input_norm)
    input_std: float = 1.0

    def __post_init__(self) -> None:
        check_input_norm("resnet152", self.input_mean, self.input_std)
        _check_common("resnet152", self.img_size, self.pretrained)


def _timm_name_for_encoder(encoder_name: str, timm_weights: str | None) -> str:
    """The timm model whose ImageNet state dict fits the smp encoder ``encoder_name``."""
    if timm_weights:
        return timm_weights
    if encoder_name.startswith("tu-"):
        return encoder_name[3:]
    if encoder_name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        return encoder_name  # smp's ResNet encoders are torchvision ResNets: same keys as timm's
    raise ValueError(
        f"pretrained: timm has no weights mapped for encoder {encoder_name!r}; use encoder_name "
        f"'tu-<timm model>' or resnet18..resnet152, set timm_weights, or pretrained: /path/to/weights.pth"
    )


def _encoder_module(net: smp.Unet) -> nn.Module:
    """The module whose keys match an ImageNet classifier's (timm model inside smp's timm-universal encoder)."""
    return net.encoder.model if isinstance(net.encoder, TimmUniversalEncoder) else net.encoder


def _load_smp_pretrained(net: smp.Unet, cfg: UNetConfig | JointLearningConfig) -> LoadReport | None:
    """Load ``cfg.pretrained`` into the encoder (ImageNet file) or the whole net (keys ``encoder.*``)."""
    timm_name = _timm_name_for_encoder(cfg.encoder_name, cfg.timm_weights) if cfg.pretrained == "timm" else ""
    resolved = resolve_pretrained(cfg.pretrained, timm_name)
    if resolved is None:
        return None
    state_dict, source = resolved
    bare = {k.removeprefix("module.").removeprefix("net."): v for k, v in state_dict.items()}
    if any(k.startswith("encoder.") for k in bare):
        return load_weights_into(net, bare, source, head_prefixes=_SMP_HEADS)
    return load_weights_into(_encoder_module(net), state_dict, source, head_prefixes=_IMAGENET_HEADS)


def _deepest_stage(encoder: nn.Module) -> nn.Module:
    """The encoder module that outputs the deepest feature map (Grad-CAM target of smp classifiers)."""
    if isinstance(encoder, TimmUniversalEncoder):
        name = encoder.model.feature_info.module_name()[-1]
        try:
            return encoder.model.get_submodule(name)
        except AttributeError:  # timm's FeatureListNet flattens "a.b" to "a_b"
            return encoder.model.get_submodule(name.replace(".", "_"))
    stages = encoder.get_stages() if getattr(encoder, "_depth", 0) == 5 else {}
    layer = stages[max(stages)][-1] if stages else None
    if layer is None or not any(layer is m for m in encoder.modules()):
        raise ValueError(
            f"cannot find the last stage of encoder {type(encoder).__name__} for Grad-CAM; "
            "use a 'tu-<timm model>' encoder or a ResNet encoder with encoder_depth 5"
        )
    return layer


class UNet(nn.Module):
    """U-Net segmentation baseline: ``(B, 1, H, W) -> {"seg": (B, n_seg_classes, H, W)}`` logits."""

    tasks = ("seg",)

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.net = smp.Unet(
            encoder_name=cfg.encoder_name,
            encoder_depth=cfg.encoder_depth,
            encoder_weights=None,  # never download: weights come through `pretrained`
            decoder_channels=cfg.decoder_channels,
            in_channels=1,
            classes=cfg.n_seg_classes,
        )
        self.multiple = 2**cfg.encoder_depth
        self.input_norm = InputStandardize(cfg.input_mean, cfg.input_std)
        self.load_report = _load_smp_pretrained(self.net, cfg)

    def forward(self, x: Tensor, tasks: Iterable[str] | str | None = None) -> dict[str, Tensor]:
        select_tasks(self.tasks, tasks, "unet")
        check_image(x, "unet", self.multiple)
        return {"seg": self.net(self.input_norm(x))}


class JointLearning(nn.Module):
    """Joint-Learning: ``(B, 1, H, W) -> {"logits": (B, n_classes), "seg": (B, n_seg_classes, H, W)}``.

    The classification head is global average pooling of the deepest encoder feature, dropout and a
    linear layer (smp's ``ClassificationHead``); the U-Net decoder gives the segmentation.
    """

    tasks = ("cls", "seg")
    cam_reshape = None  # CNN feature maps are already (B, C, h, w)

    def __init__(self, cfg: JointLearningConfig) -> None:
        super().__init__()
        self.net = smp.Unet(
            encoder_name=cfg.encoder_name,
            encoder_depth=cfg.encoder_depth,
            encoder_weights=None,
            decoder_channels=cfg.decoder_channels,
            in_channels=1,
            classes=cfg.n_seg_classes,
            aux_params={"classes": cfg.n_classes, "pooling": "avg", "dropout": cfg.cls_dropout or None},
        )
        self.multiple = 2**cfg.encoder_depth
        self.input_norm = InputStandardize(cfg.input_mean, cfg.input_std)
        self.load_report = _load_smp_pretrained(self.net, cfg)

    def forward(self, x: Tensor, tasks: Iterable[str] | str | None = None) -> dict[str, Tensor]:
        tasks = select_tasks(self.tasks, tasks, "joint_learning")
        check_image(x, "joint_learning", self.multiple)
        x = self.input_norm(x)
        if "seg" in tasks:
            seg, logits = self.net(x)
            return {"logits": logits, "seg": seg} if "cls" in tasks else {"seg": seg}
        # Classification only: smp's forward without the U-Net decoder (the head pools the deepest feature).
        return {"logits": self.net.classification_head(self.net.encoder(x)[-1])}

    def cam_target_layers(self) -> list[nn.Module]:
        """The encoder's last stage, whose output the classification head pools."""
        return [_deepest_stage(self.net.encoder)]


class ResNetClassifier(nn.Module):
    """timm ResNet classifier: ``(B, 1, H, W) -> {"logits": (B, n_classes)}``."""

    tasks = ("cls",)
    cam_reshape = None

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.backbone = timm.create_model(
            cfg.arch,
            pretrained=False,
            in_chans=1,
            num_classes=cfg.n_classes,
            drop_rate=cfg.drop_rate,
            drop_path_rate=cfg.drop_path_rate,
        )
        if not isinstance(self.backbone, timm.models.resnet.ResNet):
            raise ValueError(f"resnet152: arch {cfg.arch!r} is not a timm ResNet; use e.g. resnet152 or resnet18")
        self.input_norm = InputStandardize(cfg.input_mean, cfg.input_std)
        resolved = resolve_pretrained(cfg.pretrained, cfg.timm_weights or cfg.arch)
        self.load_report = (
            load_weights_into(self.backbone, resolved[0], resolved[1], head_prefixes=("fc.",)) if resolved else None
        )

    def forward(self, x: Tensor, tasks: Iterable[str] | str | None = None) -> dict[str, Tensor]:
        select_tasks(self.tasks, tasks, "resnet152")
        check_image(x, "resnet152")
        return {"logits": self.backbone(self.input_norm(x))}

    def cam_target_layers(self) -> list[nn.Module]:
        """The last residual stage (``backbone.layer4``)."""
        return [self.backbone.layer4]


_UNET_TEST = {"img_size": 32, "encoder_name": "tu-test_resnet", "decoder_channels": (32, 16, 16, 8, 8)}
_JOINT_TEST = {"img_size": 32, "encoder_name": "tu-test_efficientnet", "decoder_channels": (32, 16, 16, 8, 8)}


@register_model("unet", UNetConfig, test=_UNET_TEST, description="U-Net segmentation baseline (smp)")
def _build_unet(cfg: UNetConfig) -> nn.Module:
    return UNet(cfg)


@register_model("resnet152", ResNetConfig, test={"arch": "test_resnet", "img_size": 32}, description="ResNet152 (timm)")
def _build_resnet(cfg: ResNetConfig) -> nn.Module:
    return ResNetClassifier(cfg)


@register_model("joint_learning", JointLearningConfig, test=_JOINT_TEST, description="U-Net + EfficientNet-b3 [7]")
def _build_joint_learning(cfg: JointLearningConfig) -> nn.Module:
    return JointLearning(cfg)
