"""Open a trained run: ``load_run(path) -> (config, model)`` for a run folder, a ``.ckpt`` or a ``.safetensors``.

- run folder: ``RUN/config.yaml`` + ``RUN/model.safetensors`` (else ``checkpoints/best.ckpt``, else ``last.ckpt``);
- Lightning checkpoint (``.ckpt``): the config stored in it (``mtlswin_config``) or ``../config.yaml``, and the
  model rebuilt from that config with the checkpoint's ``model.*`` weights;
- our checkpoint (``.safetensors``): ``mtlswin.models.load_model``; the config from ``config.yaml`` beside it
  (``None`` when there is none).
The model is returned in eval mode on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mtlswin.config import Config, config_from_dict, load_config

__all__ = ["find_run_dir", "load_run"]


def find_run_dir(path: str | Path) -> Path | None:
    """The run folder that holds ``path`` (the folder itself, or the folder holding the file / its checkpoints/)."""
    path = Path(path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def _config_of(run_dir: Path | None) -> Config | None:
    return load_config(run_dir / "config.yaml") if run_dir is not None else None


def _model_from_ckpt(path: Path, config: Config | None) -> tuple[Config, nn.Module]:
    from mtlswin.models import create_model

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "mtlswin_config" in ckpt:
        config = config_from_dict(ckpt["mtlswin_config"])
    if config is None:
        raise ValueError(f"checkpoint {str(path)!r} holds no mtlswin config and no config.yaml is beside it")
    options = dict(config.model.options)
    options.pop("frozen_encoder", None)  # its weights are in the checkpoint: no need for the original file
    model = create_model(config.model.name, **options)
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    result = model.load_state_dict(state, strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept for clarity
        raise ValueError(f"checkpoint {path}: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    return config, model


def load_run(path: str | Path) -> tuple[Config | None, nn.Module]:
    """``(config, model)`` of a run folder, a Lightning ``.ckpt`` or our ``.safetensors`` (see module docstring)."""
    from mtlswin.models import load_model

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{str(path)!r} does not exist: give a run folder, a .ckpt or a .safetensors file")
    run_dir = find_run_dir(path)
    config = _config_of(run_dir)
    if path.is_dir():
        if (path / "model.safetensors").is_file():
            path = path / "model.safetensors"
        else:
            ckpts = [path / "checkpoints" / n for n in ("best.ckpt", "last.ckpt")]
            found = [c for c in ckpts if c.is_file()]
            if not found:
                raise ValueError(f"run folder {str(path)!r} has neither model.safetensors nor checkpoints/*.ckpt")
            path = found[0]
    if path.suffix == ".ckpt":
        config, model = _model_from_ckpt(path, config)
    elif path.suffix == ".safetensors":
        model = load_model(path)
    else:
        raise ValueError(f"unknown checkpoint type {path.suffix!r} of {str(path)!r}: expected .ckpt or .safetensors")
    return config, model.eval()
