"""Typed run configuration: one YAML file with the sections ``model``, ``data``, ``train``, ``trainer``, ``output``.

``load_config(path, overrides=["train.lr=0.1", "trainer.devices=2"])`` reads the YAML through the loader
shared with ``pretrain`` (:mod:`mtlswin.config_loader`), applies the ``--set`` overrides (``train.guidance.weight=5``
reaches into a method's settings) (values parsed as YAML, so ``0.1`` is a float and ``[40, 80]`` a list), and validates
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
- ``train``: optimisation (SGD + poly decay as in the paper, or AdamW + warm-up + cosine), loss weights, seed
  and how the sources of randomness derive from it (``rng``: ``shared`` | ``paired`` | ``independent``,
  :mod:`mtlswin.training.streams`), checkpoint cadence, and the methods (:mod:`mtlswin.methods`): ``guidance: {name: rrr, weight: 10, dilation:
  2}`` (or ``{name: cam_align, weight: 1}``; ``none`` when absent) and ``objective: {name: groupdro, eta: 0.01}``
  (``erm`` when absent); a bare name stands for the method with its defaults, unknown settings are errors
  naming the method's keys, and the old flat keys (``guidance_weight``, ``guidance_dilation``,
  ``groupdro_eta``) are errors naming the new form.
- ``trainer``: passed to ``lightning.Trainer`` (names checked against its signature) plus ``compile``.
- ``output``: ``dir`` and ``name``; the run folder is ``dir/name``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlswin import config_loader
from mtlswin.config_loader import (
    check_sections,
    dataclass_section,
    load_yaml_config,
    model_section,
    plain,
    save_yaml_config,
    trainer_section,
)
from mtlswin.data.cache import DTYPES
from mtlswin.data.transforms import POLICIES
from mtlswin.methods import get_method, method_dict, parse_method
from mtlswin.models.factory import build_config

__all__ = [
    "SECTIONS",
    "Config",
    "DataConfig",
    "ModelConfig",
    "OutputConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "legacy_train_layout",
    "load_config",
    "load_stored_config",
    "save_config",
    "upgrade_stored",
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
# train.rng: how the sources of randomness derive from train.seed (mtlswin.training.streams).
RNG_MODES = ("shared", "paired", "independent")


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
    rng: str = "shared"  # "shared" (train.seed drives everything) | "paired" | "independent": mtlswin.training.streams
    monitor: str | None = None  # None = "val/auc" (classification) or "val/iou" (segmentation only)
    checkpoint_every_n_steps: int = 50  # RUN/checkpoints/last.ckpt also every N optimiser steps
    threshold: float = 0.5  # decision threshold on the positive-class probability
    # Training options of any classifier row (docs/methods.md), each the settings dataclass of a method of
    # mtlswin.methods, written {name: rrr, weight: 10, dilation: 2} or a bare name for its defaults:
    guidance: Any = None  # a term added to the training loss ("rrr", "cam_align"); None = "none"
    objective: Any = None  # what reduces the per-sample classification loss ("groupdro"); None = "erm" (mean CE)


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
            "train": _train_dict(self.train),
            "trainer": copy.deepcopy(self.trainer),
            "output": dataclasses.asdict(self.output),
        }
        return plain(out)


def _train_dict(train: TrainConfig) -> dict[str, Any]:
    """``train`` in the file layout: each method as ``{name: ..., <settings>}``, no method as ``none`` / ``erm``."""
    out = {f.name: copy.deepcopy(getattr(train, f.name)) for f in dataclasses.fields(train)}
    for key, (_, absent) in _METHOD_KEYS.items():
        out[key] = method_dict(out[key]) if out[key] is not None else absent
    return out


SECTIONS = ("model", "data", "train", "trainer", "output")
# The flat keys of the methods' settings that each method's own settings replaced (docs/methods.md).
REPLACED_TRAIN_KEYS = {
    "guidance_weight": "train.guidance: {name: rrr, weight: ...} (or {name: cam_align, weight: ...})",
    "guidance_dilation": "train.guidance: {name: rrr, dilation: ...}",
    "groupdro_eta": "train.objective: {name: groupdro, eta: ...}",
}
# What earlier versions wrote for those keys when a run used no such method.
LEGACY_DEFAULTS = {"guidance_dilation": 2, "groupdro_eta": 0.01}
# train.<key> -> (the registry kind of its methods, the word for "no method")
_METHOD_KEYS = {"guidance": ("guidance", "none"), "objective": ("objective", "erm")}


def _method(raw: Any, key: str) -> Any:
    """The settings of the method ``train.<key>`` names (None for the word for none, or when absent)."""
    kind, absent = _METHOD_KEYS[key]
    if raw is None or raw == absent:
        return None
    return parse_method(raw, kind, f"train.{key}")


def _train_section(raw: Any) -> TrainConfig:
    """``train``: the methods parsed through their registry, the old flat keys of their settings refused."""
    if not isinstance(raw, dict):
        return dataclass_section(TrainConfig, raw, "train")  # None: the defaults; anything else: its error
    for key, new in REPLACED_TRAIN_KEYS.items():
        if key in raw:
            raise ValueError(f"train.{key} was replaced by {new}; see docs/methods.md")
    methods = {key: _method(raw[key], key) for key in _METHOD_KEYS if key in raw}
    rest = {key: value for key, value in raw.items() if key not in methods}
    return dataclasses.replace(dataclass_section(TrainConfig, rest, "train"), **methods)


def upgrade_stored(raw: dict[str, Any]) -> dict[str, Any]:
    """A config that a run folder or checkpoint of an earlier version stored, in today's layout.

    Earlier versions wrote the methods' settings as flat keys of ``train`` (``guidance: rrr``,
    ``guidance_weight``, ``guidance_dilation``, ``objective: groupdro``, ``groupdro_eta``). A config file a
    user writes with those keys is refused (:data:`REPLACED_TRAIN_KEYS`); a run already trained is read, so
    that ``evaluate``, ``report`` and ``--resume`` keep working on it. ``raw`` is returned as it is when it
    holds none of those keys.
    """
    train = raw.get("train")
    if not isinstance(train, dict) or not any(key in train for key in REPLACED_TRAIN_KEYS):
        return raw
    train = dict(train)
    weight = train.pop("guidance_weight", None)
    dilation = train.pop("guidance_dilation", None)
    eta = train.pop("groupdro_eta", None)
    settings = {"weight": weight, "dilation": dilation}
    guidance = train.get("guidance")
    if isinstance(guidance, str) and guidance != "none":
        keys = get_method(guidance, "guidance", "train.guidance").keys
        train["guidance"] = {"name": guidance, **{k: v for k, v in settings.items() if k in keys and v is not None}}
    if train.get("objective") == "groupdro" and eta is not None:
        train["objective"] = {"name": "groupdro", "eta": eta}
    return {**raw, "train": train}


def legacy_train_layout(train: dict[str, Any]) -> dict[str, Any]:
    """``train`` (the file layout of :meth:`Config.to_dict`) as earlier versions wrote it: the methods' settings
    as flat keys, a weight equal to the method's default as ``None``.

    :func:`mtlswin.runs.config_digest` hashes this layout, so a run folder trained by an earlier version keeps
    its digest and ``reproduce`` does not train it again. ``rng: shared`` (the default, what earlier versions
    did) is left out for the same reason.
    """
    out = {key: value for key, value in train.items() if key not in _METHOD_KEYS}
    if out.get("rng") == "shared":  # the default, what every run was before train.rng existed
        del out["rng"]
    guidance = train.get("guidance")
    guidance = guidance if isinstance(guidance, dict) else {"name": guidance or "none"}
    objective = train.get("objective")
    objective = objective if isinstance(objective, dict) else {"name": objective or "erm"}
    weight = guidance.get("weight")
    if weight is not None and weight == getattr(get_method(guidance["name"]).settings_cls(), "weight", None):
        weight = None
    out["guidance"] = guidance["name"]
    out["guidance_weight"] = weight
    out["guidance_dilation"] = guidance.get("dilation", LEGACY_DEFAULTS["guidance_dilation"])
    out["objective"] = objective["name"]
    out["groupdro_eta"] = objective.get("eta", LEGACY_DEFAULTS["groupdro_eta"])
    return out


def config_from_dict(raw: dict[str, Any], name: str | None = None) -> Config:
    """Validate a raw dict (the YAML layout) into a :class:`Config`; ``name`` is the default run name."""
    check_sections(raw, SECTIONS)
    model_name, model_options = model_section(raw.get("model"), ModelConfig.name)
    config = Config(
        model=ModelConfig(name=model_name, options=model_options),
        data=dataclass_section(DataConfig, raw.get("data"), "data"),
        train=_train_section(raw.get("train")),
        trainer=trainer_section(raw.get("trainer")),
        output=dataclass_section(OutputConfig, raw.get("output"), "output"),
    )
    if config.output.name is None:
        config.output.name = name or config.model.name
    if config.data.img_size is None:
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

    _check_choice("train.rng", train.rng, RNG_MODES)
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
    """``train.guidance`` with ``trainer.compile`` (the settings check themselves when parsed)."""
    guidance = config.train.guidance
    if guidance is not None and config.trainer.get("compile"):
        raise ValueError(
            f"train.guidance {guidance.name!r} cannot run with trainer.compile (a guidance term needs the eager model: "
            "rrr takes a double backward and cam_align a forward hook, which torch.compile does not support); "
            "set trainer.compile: false"
        )


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``"section.key=value"`` strings to a raw config dict (values parsed as YAML); returns a new dict."""
    return config_loader.apply_overrides(raw, overrides, SECTIONS)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config, apply ``overrides`` (``["train.lr=0.1", ...]``), validate, resolve defaults.

    Relative ``data.manifest`` / ``data.splits`` / ``data.cache_dir`` paths are kept as written (relative to
    the working directory). The run name defaults to the file's stem.
    """
    return load_yaml_config(path, overrides, SECTIONS, config_from_dict, "see configs/paper/ and configs/demo/")


def load_stored_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """:func:`load_config` of a ``config.yaml`` that a run wrote, of this version or an earlier one
    (:func:`upgrade_stored`)."""
    return load_yaml_config(
        path, overrides, SECTIONS, lambda raw, name: config_from_dict(upgrade_stored(raw), name), "not a run folder"
    )


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (readable back by :func:`load_config`)."""
    save_yaml_config(config.to_dict(), path)
