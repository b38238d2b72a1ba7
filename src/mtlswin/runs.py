"""One way to open a trained run: ``Run.open(path)`` for a run folder, a ``.ckpt`` or a ``.safetensors``.

Used by ``evaluate``, ``audit``, ``gradcam``, ``predict``, ``report``, ``reproduce`` and ``train --resume``.

- run folder: ``RUN/config.yaml`` + ``RUN/model.safetensors`` (else ``checkpoints/best.ckpt``, else ``last.ckpt``);
- Lightning checkpoint (``.ckpt``): the config stored in it (``mtlswin_config``) or the run's ``config.yaml``,
  and the model rebuilt from that config with the checkpoint's ``model.*`` weights;
- our checkpoint (``.safetensors``): :func:`mtlswin.models.load_model`; the config from the run folder
  holding it (``None`` when there is none).

Data paths (``data.manifest``, ``data.splits``, ``data.cache_dir``; the rule of docs/contracts.md):
``train`` stores them absolute, together with the absolute run location (``output.dir``/``output.name``).
Reading a run's config resolves each path with :func:`resolve_data_path`: a relative path is relative to
the run folder; an absolute path that exists is used as it is; an absolute path that no longer exists
while the run folder has moved is looked up at the same place relative to the run folder (so a whole
experiment folder, data and runs, can be moved or copied). The config of an opened run has its paths
resolved and ``output`` pointing at where the run folder is now.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import safe_open
from torch import nn

from mtlswin.config import Config, DataConfig, config_from_dict, legacy_train_layout, load_stored_config, upgrade_stored
from mtlswin.data.datamodule import CTDataModule
from mtlswin.models import create_model, load_model
from mtlswin.models.checkpoint import SOURCE_FIELDS, resolve_checkpoint

__all__ = [
    "DATA_PATH_KEYS",
    "Run",
    "config_digest",
    "find_run_dir",
    "read_run_config",
    "resolve_data_path",
    "run_tasks",
    "stored_config",
    "stored_setting",
    "trained_name",
]

DATA_PATH_KEYS = ("manifest", "splits", "cache_dir")
DIGEST_FILE = "config.sha256"


def find_run_dir(path: str | Path) -> Path | None:
    """The run folder that holds ``path`` (the folder itself, or the folder holding the file / its checkpoints/)."""
    path = Path(path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def _stored_run_dir(config: Config) -> Path | None:
    stored = config.run_dir
    return stored if stored.is_absolute() else None


def resolve_data_path(value: str | Path, root: Path | None, stored_root: Path | None = None) -> Path:
    """A data path of a run's config -> the path to open (see the module docstring for the rule).

    ``root``: where the run folder is now; ``stored_root``: where it was when trained (absolute
    ``output.dir/output.name`` of its config), used to re-base absolute paths of a moved run.
    """
    path = Path(value).expanduser()
    if root is None:
        return path
    if not path.is_absolute():
        inside = Path(os.path.normpath(root / path))
        if inside.exists() or not path.exists():  # a path valid only from the working folder: a pre-rule run
            return inside
        return path
    if path.exists() or stored_root is None or stored_root == root:
        return path
    try:
        rebased = Path(os.path.normpath(root / os.path.relpath(path, stored_root)))
    except ValueError:  # another drive (Windows)
        return path
    return rebased if rebased.exists() else path


def _resolve_config(config: Config, root: Path) -> Config:
    """``config`` with data paths resolved for the run folder ``root`` and ``output`` set to ``root``."""
    config = copy.deepcopy(config)
    stored_root = _stored_run_dir(config)
    for key in DATA_PATH_KEYS:
        value = getattr(config.data, key)
        if value:
            setattr(config.data, key, str(resolve_data_path(value, root, stored_root)))
    config.output.dir, config.output.name = str(root.absolute().parent), root.name
    return config


def read_run_config(root: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config of the run folder ``root`` with its data paths resolved (``overrides`` as for ``--set``)."""
    root = Path(root)
    path = root / "config.yaml"
    if not path.is_file():
        raise ValueError(f"{str(root)!r} is not a run folder: it has no config.yaml")
    return _resolve_config(load_stored_config(path, overrides), root.absolute())


def stored_setting(root: str | Path, section: str, key: str) -> str | None:
    """One value of a run folder's ``config.yaml`` as written (read, not validated or resolved: a report may
    look at folders of older versions); ``None`` when the file, the section or the value is absent."""
    path = Path(root) / "config.yaml"
    config = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    value = (config.get(section) or {}).get(key)
    return str(value) if value else None


def trained_name(root: str | Path) -> str:
    """The name a run folder was trained under (``output.name`` of its config.yaml; else the folder's name)."""
    root = Path(root)
    if not (root / "config.yaml").is_file():
        return root.name
    return load_stored_config(root / "config.yaml").output.name or root.name


def stored_config(config: Config) -> Config:
    """What ``train`` writes to ``RUN/config.yaml``: data paths and ``output.dir`` made absolute."""
    config = copy.deepcopy(config)
    for key in DATA_PATH_KEYS:
        value = getattr(config.data, key)
        if value:
            setattr(config.data, key, str(Path(value).expanduser().absolute()))
    config.output.dir = str(Path(config.output.dir).expanduser().absolute())
    options = config.model.options
    if options.get("frozen_encoder"):
        options["frozen_encoder"] = str(Path(options["frozen_encoder"]).expanduser().absolute())
    return config


DISPLAY_ONLY_TRAINER_KEYS = ("enable_progress_bar", "enable_model_summary")


def relative_to_run(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (the layout of ``Config.to_dict``, as ``RUN/config.yaml`` holds it) with its data paths and frozen
    encoder relative to the run folder and without ``output.dir``: what stays the same when a run folder is
    copied elsewhere. Used by :func:`config_digest` and by ``mtlswin compare``."""
    raw = {**raw, **{section: dict(raw.get(section) or {}) for section in ("data", "model", "output")}}
    run_dir = Path(raw["output"].pop("dir", "") or "") / (raw["output"].get("name") or "run")
    for section, key in [*(("data", k) for k in DATA_PATH_KEYS), ("model", "frozen_encoder")]:
        if raw[section].get(key):
            raw[section][key] = os.path.relpath(raw[section][key], run_dir)
    return raw


def config_digest(config: Config) -> str:
    """SHA-256 of a config, independent of where the run and its data lie (paths relative to the run folder).

    ``reproduce`` compares it with ``RUN/config.sha256`` (written by ``train``) to tell a finished run of
    the same settings from one trained with other ``--set`` overrides.
    """
    raw = relative_to_run(stored_config(config).to_dict())
    raw["train"] = legacy_train_layout(raw["train"])
    for key in DISPLAY_ONLY_TRAINER_KEYS:  # what a run shows on the terminal does not change what it trains
        raw["trainer"].pop(key, None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def run_tasks(path: str | Path) -> tuple[str, ...]:
    """The tasks (``cls``/``seg``/``rec``) of a run folder or ``.safetensors``, from its header alone.

    Reads the safetensors metadata (name + config) and builds the model on PyTorch's ``meta`` device:
    no weight is read or allocated. A ``ValueError`` if the header is unreadable.
    """
    file = resolve_checkpoint(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for a truncated/garbled header
        raise ValueError(f"{str(file)!r} is not a readable safetensors file: {err}") from err
    if "mtlswin_model" not in metadata:
        raise ValueError(f"{str(file)!r}: no mtlswin model name in the checkpoint header")
    options = json.loads(metadata.get("mtlswin_config", "{}"))
    options.update(dict.fromkeys(k for k in SOURCE_FIELDS if k in options))
    with torch.device("meta"):
        model = create_model(metadata["mtlswin_model"], **options)
    return tuple(getattr(model, "tasks", ()))


def _model_from_ckpt(path: Path, config: Config | None) -> tuple[Config, nn.Module]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "mtlswin_config" in ckpt:
        config = config_from_dict(upgrade_stored(ckpt["mtlswin_config"]))
    if config is None:
        raise ValueError(f"checkpoint {str(path)!r} holds no mtlswin config and no config.yaml is beside it")
    options = dict(config.model.options)
    options.pop("frozen_encoder", None)  # its weights are in the checkpoint: no need for the original file
    model = create_model(config.model.name, **options)
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True)
    return config, model


def _checkpoint_of(folder: Path) -> Path:
    if (folder / "model.safetensors").is_file():
        return folder / "model.safetensors"
    for name in ("best.ckpt", "last.ckpt"):
        if (folder / "checkpoints" / name).is_file():
            return folder / "checkpoints" / name
    raise ValueError(f"run folder {str(folder)!r} has neither model.safetensors nor checkpoints/*.ckpt")


@dataclass
class Run:
    """A trained model, its run folder and its (resolved) config; open one with :meth:`Run.open`."""

    root: Path | None  # the run folder (absolute); None for a checkpoint outside one
    config: Config | None  # resolved (data paths openable, output = root); None without config.yaml
    model: nn.Module  # eval mode, CPU
    name: str  # the run folder's name, else the checkpoint file's stem
    checkpoint: Path  # the weights file the model came from

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Open a run folder, a Lightning ``.ckpt`` or our ``.safetensors`` (see the module docstring)."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"{str(path)!r} does not exist: give a run folder, a .ckpt or a .safetensors file")
        root = find_run_dir(path)
        root = root.absolute() if root is not None else None
        config = read_run_config(root) if root is not None else None
        checkpoint = _checkpoint_of(path) if path.is_dir() else path
        if checkpoint.suffix == ".ckpt":
            ckpt_config, model = _model_from_ckpt(checkpoint, config)
            config = config if config is not None else ckpt_config
        elif checkpoint.suffix == ".safetensors":
            model = load_model(checkpoint)
        else:
            raise ValueError(
                f"unknown checkpoint type {checkpoint.suffix!r} of {str(checkpoint)!r}: expected .ckpt or .safetensors"
            )
        name = root.name if root is not None else checkpoint.stem
        return cls(root=root, config=config, model=model.eval(), name=name, checkpoint=checkpoint)

    @property
    def img_size(self) -> int:
        """The model's input side in pixels (its config's ``img_size``, else the run's ``data.img_size``, else 224)."""
        size = getattr(getattr(self.model, "config", None), "img_size", None)
        if size is None and self.config is not None:
            size = self.config.data.img_size
        return int(size or 224)

    @property
    def window(self) -> Any:
        """The run's HU window (``(center, width)`` or ``"file"``); ``(40, 80)`` without a config."""
        return self.config.data.window if self.config is not None else (40, 80)

    @property
    def threshold(self) -> float:
        """The run's decision threshold on p(positive); 0.5 without a config."""
        return float(self.config.train.threshold) if self.config is not None else 0.5

    def data_path(self, key: str) -> Path:
        """The resolved ``data.<key>`` path (``manifest`` / ``splits``); a ``ValueError`` naming the fix if unset."""
        value = getattr(self.config.data, key) if self.config is not None else None
        if not value:
            raise ValueError(f"run {self.name!r} has no data.{key} (no config.yaml, or unset); pass --{key} PATH")
        return Path(value)

    def datamodule(
        self,
        batch_size: int | None = None,
        num_workers: int | None = None,
        manifest: str | Path | None = None,
        splits: str | Path | None = None,
        setup: bool = True,
    ) -> Any:
        """The run's ``CTDataModule`` with every data setting of its config, for evaluation (no augmentation).

        ``batch_size`` sets the evaluation batch size (default: ``data.eval_batch_size``, else
        ``data.batch_size``); ``manifest`` / ``splits`` replace the run's; ``num_workers`` the loader workers.
        """
        d = self.config.data if self.config is not None else DataConfig()
        paths = {}
        for key, given in (("manifest", manifest), ("splits", splits)):
            paths[key] = Path(given) if given is not None else self.data_path(key)
        module = CTDataModule(
            paths["manifest"],
            paths["splits"],
            target=d.target,
            img_size=self.img_size,
            batch_size=d.batch_size,
            num_workers=d.num_workers if num_workers is None else num_workers,
            augment="none",
            window=d.window,
            cache_dir=d.cache_dir,
            cache_dtype=d.cache_dtype,
            on_bad_row=d.on_bad_row,
            seed=self.config.train.seed if self.config is not None else 0,
            eval_batch_size=batch_size or d.eval_batch_size,
        )
        if setup:
            module.setup()
        return module
