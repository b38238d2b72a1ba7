"""Typed configs of the Swin models: every size knob is a field (variants are data).

Defaults are the paper's (embed 96, depths 2-2-2-2, heads 3-6-12-24, window 7, patch 4, 224 px);
``swin_tiny`` / ``joint_swin_tiny`` / ``mtl_swin_unet size="tiny"`` use Swin-T depths 2-2-6-2.
Lists (from YAML/JSON) are turned into tuples so a config survives a save/load round trip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mtlswin.models.input_norm import check_input_norm

__all__ = [
    "MTL_DECODERS",
    "MTL_SIZES",
    "MTL_TASKS",
    "TEST_ENCODER",
    "TEST_UNET",
    "JointSwinConfig",
    "JointSwinTinyConfig",
    "MTLSwinUnetConfig",
    "SegGatedSwinConfig",
    "SwinClassifierConfig",
    "SwinConfig",
    "SwinTinyConfig",
    "SwinUnetConfig",
]

SWIN_T_DEPTHS = (2, 2, 6, 2)
PAPER_DEPTHS = (2, 2, 2, 2)
MTL_TASKS = ("cls+seg", "cls+rec", "cls+seg+rec")
MTL_SIZES = {"default": PAPER_DEPTHS, "tiny": SWIN_T_DEPTHS}
MTL_DECODERS = ("shared", "separate")
_TUPLE_FIELDS = ("depths", "num_heads", "decoder_depths")


@dataclass
class SwinConfig:
    """Knobs of one Swin encoder (shared by every Swin model)."""

    img_size: int = 224  # input side in pixels (square); see mtlswin.models.sizes for valid values
    patch_size: int = 4  # patch embedding stride and kernel
    window_size: int = 7  # attention window side (tokens)
    embed_dim: int = 96  # channels of stage 0; stage i has embed_dim * 2**i
    depths: tuple[int, ...] = PAPER_DEPTHS  # Swin blocks per stage
    num_heads: tuple[int, ...] = (3, 6, 12, 24)  # attention heads per stage
    mlp_ratio: float = 4.0  # MLP hidden width / block width
    drop_path_rate: float = 0.2  # stochastic depth at the deepest block (Swin-Unet config value)
    qkv_bias: bool = True  # bias of the qkv projection
    pretrained: str | None = None  # None | local checkpoint path | "timm" (ImageNet weights via timm)
    input_mean: float = 0.0  # the model standardises its [0, 1] input: (x - input_mean) / input_std
    input_std: float = 1.0  # (training fills both from the train split with data.normalize: train-stats)

    def __post_init__(self) -> None:
        check_input_norm(type(self).__name__, self.input_mean, self.input_std)
        for name in _TUPLE_FIELDS:
            value = getattr(self, name, None)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        if self.pretrained is not None and not isinstance(self.pretrained, str):
            raise ValueError(f"pretrained must be None, a file path or 'timm', got {self.pretrained!r}")

    def encoder_kwargs(self) -> dict:
        """Keyword arguments of :class:`mtlswin.models.encoder.SwinEncoder` for this config."""
        return {
            "img_size": self.img_size,
            "patch_size": self.patch_size,
            "window_size": self.window_size,
            "embed_dim": self.embed_dim,
            "depths": tuple(self.depths),
            "num_heads": tuple(self.num_heads),
            "mlp_ratio": self.mlp_ratio,
            "drop_path_rate": self.drop_path_rate,
            "qkv_bias": self.qkv_bias,
        }

    def input_kwargs(self) -> dict:
        """The input standardisation of :class:`~mtlswin.models.encoder.SwinEncoder` (decoders take none)."""
        return {"input_mean": self.input_mean, "input_std": self.input_std}

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass
class SwinClassifierConfig(SwinConfig):
    """``swin``: Swin encoder, GAP over the normalised bottleneck tokens, Linear."""

    n_classes: int = 2  # classification outputs


@dataclass
class SwinTinyConfig(SwinClassifierConfig):
    """``swin_tiny``: as ``swin`` with Swin-T depths 2-2-6-2."""

    depths: tuple[int, ...] = SWIN_T_DEPTHS


@dataclass
class SwinUnetConfig(SwinConfig):
    """``swin_unet``: Swin encoder + Swin-Unet decoder + 1x1 segmentation head."""

    n_seg_classes: int = 2  # segmentation classes (background included)
    decoder_depths: tuple[int, ...] | None = None  # blocks of decoder stages 1..n-1; None mirrors the encoder


@dataclass
class MTLSwinUnetConfig(SwinUnetConfig):
    """``mtl_swin_unet``: one encoder, GAP+Linear classifier, decoder(s) for segmentation / reconstruction."""

    depths: tuple[int, ...] | None = None  # None: taken from `size`
    tasks: str = "cls+seg+rec"  # one of MTL_TASKS
    size: str = "default"  # "default" (2-2-2-2) or "tiny" (Swin-T, 2-2-6-2): sets depths when depths is None
    decoder: str = "shared"  # "shared": one decoder feeds both 1x1 heads; "separate": one decoder per task
    n_classes: int = 2  # classification outputs

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("tasks", self.tasks, MTL_TASKS)
        _check_choice("size", self.size, tuple(MTL_SIZES))
        _check_choice("decoder", self.decoder, MTL_DECODERS)
        if self.depths is None:
            self.depths = MTL_SIZES[self.size]
        elif self.size != "default" and tuple(self.depths) != MTL_SIZES[self.size]:
            raise ValueError(
                f"size {self.size!r} means depths {MTL_SIZES[self.size]}, but depths {tuple(self.depths)} is given; "
                "give size or depths, not both"
            )


@dataclass
class JointSwinConfig(SwinClassifierConfig):
    """``joint_swin``: trainable + frozen (segmentation-trained) Swin encoders, features concatenated."""

    frozen_encoder: str | None = None  # our swin_unet checkpoint / run folder, or an authors' checkpoint


@dataclass
class JointSwinTinyConfig(JointSwinConfig):
    """``joint_swin_tiny``: as ``joint_swin`` with Swin-T depths 2-2-6-2."""

    depths: tuple[int, ...] = SWIN_T_DEPTHS


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


# CPU-sized variants for tests and the demo: a forward+backward takes milliseconds. drop_path 0 so every
# block sees a gradient on every step (stochastic depth could drop a whole tiny branch).
TEST_ENCODER = {
    "img_size": 32,
    "patch_size": 2,
    "window_size": 4,
    "embed_dim": 8,
    "depths": (2, 2),
    "num_heads": (1, 2),
    "drop_path_rate": 0.0,
}
# Three stages so the decoder has a middle stage (blocks + PatchExpand) as well as the first and last.
TEST_UNET = {**TEST_ENCODER, "window_size": 2, "depths": (2, 2, 2), "num_heads": (1, 2, 2)}


@dataclass
class SegGatedSwinConfig(SwinUnetConfig):
    """``seg_gated_swin``: a frozen trained Swin-Unet gates the image, a trainable ``swin`` classifier classifies it.

    The size fields (img_size ... qkv_bias, decoder_depths, n_seg_classes) describe BOTH networks: the frozen
    Swin-Unet must have been trained at these sizes, and the classifier is built at the same sizes.
    ``input_mean`` / ``input_std`` are the classifier's input standardisation (applied to the gated image).
    """

    n_classes: int = 2  # classification outputs of the trainable classifier
    # The frozen segmenter: a trained swin_unet (or mtl_swin_unet with "seg") run folder or model.safetensors.
    # Named like joint_swin's field so train / runs / checkpoint / reproduce resolve it and drop it alike:
    # its weights are saved inside this model's checkpoint, so load_model never needs the file again.
    frozen_encoder: str | None = None
    gate_radius: int = 8  # dilation of the predicted hematoma map, in input pixels (max-pool of side 2r+1; 0 = none)
    gate_floor: float = 0.0  # gate g = max(dilated probability, gate_floor); 0 = nothing outside the region is seen
    # The segmenter's own input standardisation (None: taken from its checkpoint; 0 / 1 without one).
    segmenter_input_mean: float | None = None
    segmenter_input_std: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.gate_radius, bool) or not isinstance(self.gate_radius, int) or self.gate_radius < 0:
            raise ValueError(f"gate_radius must be an integer >= 0 (pixels), got {self.gate_radius!r}")
        if not 0.0 <= float(self.gate_floor) < 1.0:
            raise ValueError(f"gate_floor must be in [0, 1), got {self.gate_floor!r}")
