"""Typed config of ``mtlswin pretrain``: YAML sections ``model``, ``data``, ``pretrain``, ``trainer``, ``output``.

Loaded by the loader of ``train``'s config (:mod:`mtlswin.config_loader`), so its conventions hold: unknown keys and wrongly typed values are
``ValueError``s naming the key; ``--set section.key=value`` overrides, values parsed as YAML.

- ``model``: the registry name of a model that declares ``simmim_pretrain`` (``swin``, ``swin_tiny``,
  ``swin_unet``, ``mtl_swin_unet``, ``joint_swin``, ...) and options of its config: the encoder is built
  with that model's sizes, so the written ``encoder.safetensors`` fits ``model.pretrained`` of the same sizes.
- ``data``: ``inputs`` (manifest CSVs, folders, image files, NIfTI volumes, DICOM series folders; labels and
  masks of a manifest are ignored), ``img_size``, ``window``, ``batch_size``, ``num_workers``, ``normalize``.
- ``pretrain``: SimMIM and optimisation (AdamW, linear warm-up, cosine decay per step).
- ``trainer``: ``lightning.Trainer`` arguments (as in ``train``); ``output``: ``dir`` / ``name``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlswin import config_loader as loader
from mtlswin.config import ModelConfig, OutputConfig
from mtlswin.models.registry import models_with

__all__ = [
    "PretrainConfig",
    "PretrainDataConfig",
    "SimMIMConfig",
    "load_pretrain_config",
    "pretrain_config_from_dict",
    "save_pretrain_config",
]


@dataclass
class PretrainDataConfig:
    """Unlabeled slices for pretraining."""

    inputs: list[str] = field(default_factory=list)  # manifest CSVs, folders, files, volumes, series folders
    img_size: int | None = None  # None = the model's img_size
    window: Any = (40, 80)  # (level, width) in HU, or "file"
    batch_size: int = 32
    num_workers: int = 0
    normalize: Any = "corpus-stats"  # "corpus-stats" (pixel mean/std of the inputs) | "none" | [mean, std]


@dataclass
class SimMIMConfig:
    """SimMIM and its optimisation (SimMIM's Swin recipe, scaled down: AdamW, warm-up, cosine)."""

    mask_ratio: float = 0.6  # share of mask patches replaced by the mask token
    mask_patch_size: int | None = None  # pixels; None = the encoder's total stride (32 for patch 4, 4 stages)
    epochs: int = 100
    lr: float = 2e-4
    weight_decay: float = 0.05
    warmup_steps: int = 0  # linear warm-up of the rate over the first N optimiser steps
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    seed: int = 0
    checkpoint_every_n_steps: int = 50  # RUN/checkpoints/last.ckpt also every N optimiser steps


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="swin"))
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    pretrain: SimMIMConfig = field(default_factory=SimMIMConfig)
    trainer: dict[str, Any] = field(default_factory=dict)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(dir="runs", name=None))

    @property
    def run_dir(self) -> Path:
        return Path(self.output.dir) / (self.output.name or "pretrain")

    def to_dict(self) -> dict[str, Any]:
        out = {
            "model": {"name": self.model.name, **copy.deepcopy(self.model.options)},
            "data": dataclasses.asdict(self.data),
            "pretrain": dataclasses.asdict(self.pretrain),
            "trainer": copy.deepcopy(self.trainer),
            "output": dataclasses.asdict(self.output),
        }
        return loader.plain(out)


_SECTIONS = ("model", "data", "pretrain", "trainer", "output")


def pretrain_config_from_dict(raw: dict[str, Any], name: str | None = None) -> PretrainConfig:
    """Validate a raw dict (the YAML layout) into a :class:`PretrainConfig`."""
    loader.check_sections(raw, _SECTIONS, "a pretrain config")
    model_name, model_options = loader.model_section(raw.get("model"), "swin")
    config = PretrainConfig(
        model=ModelConfig(name=model_name, options=model_options),
        data=loader.dataclass_section(PretrainDataConfig, raw.get("data"), "data"),
        pretrain=loader.dataclass_section(SimMIMConfig, raw.get("pretrain"), "pretrain"),
        trainer=loader.trainer_section(raw.get("trainer"), epochs_key="pretrain.epochs"),
        output=loader.dataclass_section(OutputConfig, raw.get("output"), "output"),
    )
    swin_families = models_with("simmim_pretrain")
    if config.model.name not in swin_families:
        raise ValueError(f"model.name must be a Swin family ({', '.join(swin_families)}), got {config.model.name!r}")
    if config.output.name is None:
        config.output.name = name or "pretrain"
    if isinstance(config.data.window, list):
        config.data.window = tuple(config.data.window)
    _check(config)
    return config


def _check(config: PretrainConfig) -> None:
    d, p = config.data, config.pretrain
    norm = d.normalize
    ok = norm in ("none", "corpus-stats") or (
        isinstance(norm, (list, tuple))
        and len(norm) == 2
        and all(isinstance(v, (int, float)) for v in norm)
        and norm[1] > 0
    )
    if not ok:
        raise ValueError(f"data.normalize must be 'corpus-stats', 'none' or [mean, std] with std > 0; got {norm!r}")
    if d.batch_size < 1:
        raise ValueError(f"data.batch_size must be >= 1, got {d.batch_size}")
    if not 0 < p.mask_ratio < 1:
        raise ValueError(f"pretrain.mask_ratio must be in (0, 1), got {p.mask_ratio}")
    if p.epochs < 1 or p.lr <= 0 or p.warmup_steps < 0 or p.checkpoint_every_n_steps < 0:
        raise ValueError("pretrain.epochs must be >= 1, lr > 0, warmup_steps >= 0 and checkpoint_every_n_steps >= 0")
    name = config.output.name
    if not name or "/" in name or "\\" in name or ".." in name:
        raise ValueError(f"output.name must be a plain folder name, got {name!r}")


def load_pretrain_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """Read a YAML pretrain config (or start from the defaults when ``path`` is None), apply ``overrides``."""
    return loader.load_yaml_config(
        path, overrides, _SECTIONS, pretrain_config_from_dict, "see configs/demo/pretrain.yaml"
    )


def save_pretrain_config(config: PretrainConfig, path: str | Path) -> None:
    """Write the resolved pretrain config as YAML (readable back by :func:`load_pretrain_config`)."""
    loader.save_yaml_config(config.to_dict(), path)
