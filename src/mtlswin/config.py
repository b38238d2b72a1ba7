"""Typed run configuration: one YAML file with the sections ``model``, ``data``, ``train``, ``trainer``, ``output``.

``load_config(path, overrides=["train.lr=0.1", "trainer.devices=2"])`` reads the YAML, applies the
``--set`` overrides (values parsed as YAML, so ``0.1`` is a float and ``[40, 80]`` a list), and validates
every key and value at load time, each error a ``ValueError`` naming the key: an unknown key (with the
closest valid one), a value of the wrong type (the value and the expected type, :mod:`mtlswin.typecheck`),
a value out of range or not among the choices (``data.augment``, ``data.on_bad_row``,
``data.cache_dtype``), contradicting keys (``model.size`` with other ``model.depths``;
``trainer.max_epochs``, which ``train.epochs`` sets), and an ``output.name`` that is not a plain folder name.
Broken YAML is an error naming the file and the line.

- ``model``: ``name`` (registry name) plus any field of that model's config dataclass
  (validated by :func:`mtlswin.models.factory.build_config`).
- ``data``: the arguments of :class:`mtlswin.data.datamodule.CTDataModule`; ``img_size`` defaults to
  the model's ``img_size``.
- ``train``: optimisation (SGD + poly decay as in the paper, or AdamW + warm-up + cosine), loss weights, seed,
  checkpoint cadence.
- ``trainer``: passed to ``lightning.Trainer`` (names checked against its signature) plus ``compile``.
- ``output``: ``dir`` and ``name``; the run folder is ``dir/name``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtlswin.typecheck import check_type

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "OutputConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "save_config",
]


@dataclass
class ModelConfig:
    """``name`` of a registered model and the overrides of its config dataclass."""

    name: str = "mtl_swin_unet"
    options: dict[str, Any] = field(default_factory=dict)  # fields of the model's config dataclass


@dataclass
class DataConfig:
    """Arguments of ``CTDataModule`` (see docs/contracts.md)."""

    manifest: str | None = None  # manifest CSV (paths relative to its folder)
    splits: str | None = None  # splits CSV (index, split)
    target: str = "hypodensity"  # marker column used as the binary label
    img_size: int | None = None  # None = the model's img_size
    window: Any = (40, 80)  # (level, width) in HU, or "file"
    augment: str = "paper"  # "paper" | "authors" | "none"
    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int = 2
    cache_dir: str | None = None
    cache_dtype: str = "uint8"
    device_cache: bool = False  # train split's cache on the training device, augmented there (needs cache_dir)
    on_bad_row: str = "error"  # "error" | "skip"
    normalize: Any = "none"  # "none" | "train-stats" (mean/std of the train split) | [mean, std]: the model's
    # input standardisation (model.input_mean / input_std, saved with the weights); see mtlswin.models.input_norm
    mask_fraction: float = 1.0  # mask budget: share of the train split's masks kept (whole patients, train.seed)


# The optimiser and schedule names the config accepts; :mod:`mtlswin.training.schedule` builds them.
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "cosine")
# Training options of any classifier row (docs/methods.md): a guidance term added to the loss and the objective
# that reduces the per-sample classification loss; :mod:`mtlswin.training.module` builds them.
GUIDANCE_METHODS = ("none", "rrr", "cam_align")
OBJECTIVES = ("erm", "groupdro")
# lambda of each guidance method when ``train.guidance_weight`` is None (docs/methods.md says why these).
DEFAULT_GUIDANCE_WEIGHTS = {"rrr": 10.0, "cam_align": 1.0}


@dataclass
class TrainConfig:
    """Optimisation (:mod:`mtlswin.training.schedule`). The paper: SGD(momentum, weight_decay) with
    ``lr * (1 - iter/max_iter) ** poly_power`` per iteration; from scratch: AdamW, warm-up, cosine."""

    epochs: int = 600  # 600 with a classification task, 200 for segmentation only (the paper)
    optimizer: str = "sgd"  # "sgd" (the paper) | "adamw" (from scratch: decay on weight matrices only)
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4
    schedule: str = "poly"  # "poly" (the paper) | "cosine"; per optimiser step
    poly_power: float = 0.9
    warmup_steps: int = 0  # linear warm-up of the rate over the first N optimiser steps
    loss_weights: dict[str, float] | None = None  # task -> weight; None = the paper's defaults
    uncertainty_weighting: bool = False  # Kendall et al. 2018 learned task weights (beyond the paper)
    seed: int = 0
    monitor: str | None = None  # None = "val/auc" (classification) or "val/iou" (segmentation only)
    checkpoint_every_n_steps: int = 50  # RUN/checkpoints/last.ckpt also every N optimiser steps
    threshold: float = 0.5  # decision threshold on the positive-class probability
    guidance: str = "none"  # "none" | "rrr" (input gradients outside the mask) | "cam_align" (CAM-mask Dice)
    guidance_weight: float | None = None  # lambda of the guidance term; None = DEFAULT_GUIDANCE_WEIGHTS[guidance]
    guidance_dilation: int = 2  # rrr: pixels by which the hematoma mask is dilated before "outside" is taken
    objective: str = "erm"  # "erm" (mean CE) | "groupdro" (Sagawa et al. 2020; groups = label x cue)
    groupdro_eta: float = 0.01  # groupdro: exponentiated-gradient step size of the group weights q


@dataclass
class OutputConfig:
    """The run folder is ``dir/name``; ``name`` defaults to the config file's stem."""

    dir: str = "runs"
    name: str | None = None


@dataclass
class Config:
    """A whole run configuration. ``trainer`` is a dict of ``lightning.Trainer`` arguments plus ``compile``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: dict[str, Any] = field(default_factory=dict)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def run_dir(self) -> Path:
        """The run folder ``output.dir / output.name``."""
        return Path(self.output.dir) / (self.output.name or "run")

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-able dict in the file layout (``model`` flattened: name + options)."""
        out = {
            "model": {"name": self.model.name, **copy.deepcopy(self.model.options)},
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "trainer": copy.deepcopy(self.trainer),
            "output": dataclasses.asdict(self.output),
        }
        if isinstance(out["data"]["window"], tuple):
            out["data"]["window"] = list(out["data"]["window"])
        return _plain(out)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "trainer": dict, "output": OutputConfig}
_TRAINER_EXTRA = ("compile",)
_TRAINER_RESERVED = {
    "callbacks": "checkpoints/",
    "logger": "logs/",
    "plugins": "atomic checkpoint IO",
    "default_root_dir": "output.*",
}


def _closest(word: str, choices: list[str]) -> str:
    from mtlswin.models.registry import closest_name  # lazy: the registry imports torch

    match = closest_name(word, choices)
    return f"; did you mean {match!r}?" if match else ""


def _unknown(where: str, key: str, valid: list[str]) -> ValueError:
    return ValueError(f"unknown config key '{where}{key}'{_closest(key, valid)} (valid: {', '.join(sorted(valid))})")


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the dict dumps as plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _trainer_arg_names() -> list[str]:
    from lightning.pytorch import Trainer

    params = inspect.signature(Trainer.__init__).parameters
    return [name for name in params if name != "self"] + list(_TRAINER_EXTRA)


def _section(cls: type, raw: Any, section: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"config section {section!r} must be a mapping, got {type(raw).__name__}: {raw!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in names:
            raise _unknown(f"{section}.", key, names)
    return cls(**{key: check_type(f"{section}.{key}", value, hints[key]) for key, value in raw.items()})


def _model_section(raw: Any) -> ModelConfig:
    from mtlswin.models.factory import build_config
    from mtlswin.models.registry import get_entry

    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"config section 'model' must be a mapping, got {type(raw).__name__}: {raw!r}")
    raw = dict(raw or {})
    name = raw.pop("name", ModelConfig.name)
    try:
        hints = typing.get_type_hints(get_entry(name).config_cls)
    except KeyError as err:
        raise ValueError(f"config section 'model': {err.args[0]}") from err
    raw = {key: check_type(f"model.{key}", value, hints[key]) if key in hints else value for key, value in raw.items()}
    try:
        build_config(name, **raw)  # validates every option name and the model's own checks (choices, sizes)
    except (KeyError, ValueError) as err:
        raise ValueError(f"config section 'model': {err.args[0] if err.args else err}") from err
    return ModelConfig(name=name, options=raw)


def _trainer_section(raw: Any) -> dict[str, Any]:
    if raw is not None and not isinstance(raw, dict):
        raise ValueError(f"config section 'trainer' must be a mapping, got {type(raw).__name__}: {raw!r}")
    raw = dict(raw or {})
    valid = _trainer_arg_names()
    hints = _trainer_hints()
    for key, value in raw.items():
        if key not in valid:
            raise _unknown("trainer.", key, valid)
        if key in _TRAINER_RESERVED:
            raise ValueError(f"trainer.{key} is set by mtlswin itself (run folder {_TRAINER_RESERVED[key]}); remove it")
        if key == "max_epochs":
            raise ValueError(
                f"trainer.max_epochs ({value!r}) would override train.epochs, which also sets the length of the "
                "learning-rate schedule; set train.epochs instead and remove trainer.max_epochs"
            )
        raw[key] = check_type(f"trainer.{key}", value, hints.get(key, typing.Any))
    _check_devices(raw.get("devices", "auto"))
    return raw


def _trainer_hints() -> dict[str, Any]:
    from lightning.pytorch import Trainer

    return {**typing.get_type_hints(Trainer.__init__), "compile": bool | str}


def _check_devices(devices: Any) -> None:
    """``trainer.devices``: ``"auto"``, a count (``-1`` = all), a list of indices or a string of them (``"0,1"``)."""
    text = str(devices).strip() if isinstance(devices, str) else None
    if text is not None and text != "auto" and not all(p.strip().lstrip("-").isdigit() for p in text.split(",")):
        raise ValueError(
            f"trainer.devices must be 'auto', a number of devices (e.g. 2, -1 for all) or a list of device indices "
            f"(e.g. [0, 1] or '0,1'), got {devices!r}"
        )


def config_from_dict(raw: dict[str, Any], name: str | None = None) -> Config:
    """Validate a raw dict (the YAML layout) into a :class:`Config`; ``name`` is the default run name."""
    if not isinstance(raw, dict):
        raise ValueError(f"a config must be a mapping of sections {list(_SECTIONS)}, got {type(raw).__name__}")
    for key in raw:
        if key not in _SECTIONS:
            raise _unknown("", key, list(_SECTIONS))
    config = Config(
        model=_model_section(raw.get("model")),
        data=_section(DataConfig, raw.get("data"), "data"),
        train=_section(TrainConfig, raw.get("train"), "train"),
        trainer=_trainer_section(raw.get("trainer")),
        output=_section(OutputConfig, raw.get("output"), "output"),
    )
    if config.output.name is None:
        config.output.name = name or config.model.name
    if config.data.img_size is None:
        from mtlswin.models.factory import build_config

        config.data.img_size = getattr(build_config(config.model.name, **config.model.options), "img_size", 224)
    if isinstance(config.data.window, list):
        config.data.window = tuple(config.data.window)
    _check_values(config)
    return config


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_values(config: Config) -> None:
    train, data = config.train, config.data
    if train.epochs < 1:
        raise ValueError(f"train.epochs must be >= 1, got {train.epochs}")
    if train.lr <= 0:
        raise ValueError(f"train.lr must be > 0, got {train.lr}")
    for key, value, choices in (("optimizer", train.optimizer, OPTIMIZERS), ("schedule", train.schedule, SCHEDULES)):
        if value not in choices:
            raise ValueError(f"train.{key} must be one of {', '.join(choices)}; got {value!r}")
    if train.warmup_steps < 0:
        raise ValueError(f"train.warmup_steps must be >= 0, got {train.warmup_steps}")
    norm = data.normalize
    if not (norm in ("none", "train-stats") or (isinstance(norm, (list, tuple)) and len(norm) == 2
                                                 and all(isinstance(v, (int, float)) for v in norm) and norm[1] > 0)):  # fmt: skip
        raise ValueError(f"data.normalize must be 'none', 'train-stats' or [mean, std] with std > 0; got {norm!r}")
    if data.batch_size < 1:
        raise ValueError(f"data.batch_size must be >= 1, got {data.batch_size}")
    if not 0.0 <= data.mask_fraction <= 1.0:
        raise ValueError(f"data.mask_fraction must be in [0, 1] (1 = every train mask), got {data.mask_fraction}")
    from mtlswin.data.cache import DTYPES  # lazy: the data modules import torch
    from mtlswin.data.transforms import POLICIES

    _check_choice("data.augment", data.augment, POLICIES)
    _check_choice("data.on_bad_row", data.on_bad_row, ("error", "skip"))
    _check_choice("data.cache_dtype", data.cache_dtype, DTYPES)
    if data.device_cache and not data.cache_dir:
        raise ValueError("data.device_cache: true needs data.cache_dir (the cache is what is moved to the device)")
    name = config.output.name
    if not name or name in (".", "..") or "/" in name or "\\" in name or ".." in name:
        raise ValueError(
            f"output.name must be a plain folder name (no '/', '\\' or '..'), got {name!r}; put parent folders in output.dir"
        )
    if train.checkpoint_every_n_steps < 0:
        raise ValueError(
            f"train.checkpoint_every_n_steps must be >= 0 (0 = only at epoch end), got {train.checkpoint_every_n_steps}"
        )
    _check_methods(config)
    if train.loss_weights is not None:
        bad = [t for t in train.loss_weights if t not in ("cls", "seg", "rec")]
        if bad:
            raise ValueError(f"train.loss_weights has unknown task {bad[0]!r}; tasks are 'cls', 'seg', 'rec'")


def _check_methods(config: Config) -> None:
    """``train.guidance`` / ``objective`` and their parameters (docs/methods.md)."""
    train = config.train
    _check_choice("train.guidance", train.guidance, GUIDANCE_METHODS)
    _check_choice("train.objective", train.objective, OBJECTIVES)
    if train.guidance_weight is not None and train.guidance_weight < 0:
        raise ValueError(
            f"train.guidance_weight must be >= 0 (or null for the method's default), got {train.guidance_weight}"
        )
    if train.guidance_dilation < 0:
        raise ValueError(f"train.guidance_dilation must be >= 0 pixels, got {train.guidance_dilation}")
    if train.groupdro_eta <= 0:
        raise ValueError(f"train.groupdro_eta must be > 0, got {train.groupdro_eta}")
    if train.guidance != "none" and config.trainer.get("compile"):
        raise ValueError(
            f"train.guidance {train.guidance!r} cannot run with trainer.compile (rrr needs a double backward and "
            "cam_align a forward hook, which torch.compile does not support); set trainer.compile: false"
        )


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``"section.key=value"`` strings to a raw config dict (values parsed as YAML); returns a new dict."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like 'section.key=value', e.g. 'train.lr=0.1'")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        if len(parts) < 2:
            raise ValueError(f"override key {key!r} must name a section and a key, e.g. 'train.lr'")
        if parts[0] not in _SECTIONS:
            raise _unknown("", parts[0], list(_SECTIONS))
        node = raw
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ValueError(f"override {item!r}: the value {text!r} is not valid YAML") from err
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config, apply ``overrides`` (``["train.lr=0.1", ...]``), validate, resolve defaults.

    Relative ``data.manifest`` / ``data.splits`` / ``data.cache_dir`` paths are kept as written (relative to
    the working directory). The run name defaults to the file's stem.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist; see configs/paper/ and configs/demo/")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config file {str(path)!r}{where}: not valid YAML ({problem})") from err
    name = path.stem if path.name != "config.yaml" else path.parent.name
    return config_from_dict(apply_overrides(raw, overrides), name=name)


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (readable back by :func:`load_config`)."""
    from mtlswin.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
