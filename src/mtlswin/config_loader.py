"""The one loader of YAML configs (``train``'s :mod:`mtlswin.config`, ``pretrain``'s :mod:`mtlswin.pretrain.config`).

A config is a mapping of sections; each command names its sections and turns the validated raw dict into its
typed config. What is shared lives here:

- :func:`load_yaml_config`: read the file (broken YAML is an error naming the file and the line), apply the
  ``--set section.key=value`` overrides (:func:`apply_overrides`), hand the dict to the command's builder;
- :func:`dataclass_section`: a section that is a dataclass; unknown keys are errors naming the closest valid
  key (:func:`unknown_key`), values are checked against the field types (:mod:`mtlswin.typecheck`);
- :func:`model_section` (a registry name plus options of its config) and :func:`trainer_section`
  (``lightning.Trainer`` arguments plus ``compile``), which both commands have;
- :func:`save_yaml_config`: the resolved config as YAML, readable back by the loader.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mtlswin.io import atomic_write_text
from mtlswin.models.factory import build_config
from mtlswin.models.registry import closest_name, get_entry
from mtlswin.typecheck import check_type

__all__ = [
    "TRAINER_EXTRA",
    "apply_overrides",
    "check_sections",
    "closest_hint",
    "dataclass_section",
    "load_yaml_config",
    "model_section",
    "plain",
    "save_yaml_config",
    "trainer_section",
    "unknown_key",
]

T = TypeVar("T")

TRAINER_EXTRA = ("compile",)  # trainer keys of ours, beside the arguments of lightning.Trainer
_TRAINER_RESERVED = {
    "callbacks": "checkpoints/",
    "logger": "logs/",
    "plugins": "atomic checkpoint IO",
    "default_root_dir": "output.*",
}


def closest_hint(word: str, choices: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``word``, or ``""``."""
    match = closest_name(word, choices)
    return f"; did you mean {match!r}?" if match else ""


def unknown_key(where: str, key: str, valid: list[str]) -> ValueError:
    """The error for an unknown key ``where + key`` (``where`` is e.g. ``"train."``), naming the valid ones."""
    return ValueError(
        f"unknown config key '{where}{key}'{closest_hint(key, valid)} (valid: {', '.join(sorted(valid))})"
    )


def plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the dict dumps as plain YAML."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def check_sections(raw: Any, sections: tuple[str, ...], what: str = "a config") -> None:
    """``raw`` is a mapping whose keys are all among ``sections``."""
    if not isinstance(raw, dict):
        raise ValueError(f"{what} must be a mapping of sections {list(sections)}, got {type(raw).__name__}")
    for key in raw:
        if key not in sections:
            raise unknown_key("", key, list(sections))


def _mapping(raw: Any, section: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"config section {section!r} must be a mapping, got {type(raw).__name__}: {raw!r}")
    return dict(raw)


def dataclass_section(cls: type[T], raw: Any, section: str) -> T:
    """The dataclass ``cls`` from the mapping ``raw`` of config section ``section`` (keys and types checked)."""
    raw = _mapping(raw, section)
    names = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in names:
            raise unknown_key(f"{section}.", key, names)
    return cls(**{key: check_type(f"{section}.{key}", value, hints[key]) for key, value in raw.items()})


def model_section(raw: Any, default_name: str) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of the ``model`` section: a registry name and fields of that model's config
    (validated by :func:`mtlswin.models.factory.build_config`, the model's own checks included)."""
    raw = _mapping(raw, "model")
    name = raw.pop("name", default_name)
    try:
        hints = typing.get_type_hints(get_entry(name).config_cls)
    except KeyError as err:
        raise ValueError(f"config section 'model': {err.args[0]}") from err
    raw = {key: check_type(f"model.{key}", value, hints[key]) if key in hints else value for key, value in raw.items()}
    try:
        build_config(name, **raw)  # validates every option name and the model's own checks (choices, sizes)
    except (KeyError, ValueError) as err:
        raise ValueError(f"config section 'model': {err.args[0] if err.args else err}") from err
    return name, raw


def _trainer_signature() -> tuple[list[str], dict[str, Any]]:
    from lightning.pytorch import Trainer  # lazy: Lightning is heavy to import

    names = [name for name in inspect.signature(Trainer.__init__).parameters if name != "self"]
    hints = {**typing.get_type_hints(Trainer.__init__), "compile": bool | str}
    return names + list(TRAINER_EXTRA), hints


def trainer_section(raw: Any, epochs_key: str = "train.epochs") -> dict[str, Any]:
    """The ``trainer`` section: ``lightning.Trainer`` arguments (names and types checked against its signature)
    plus ``compile``; keys mtlswin sets itself and ``max_epochs`` (``epochs_key`` sets it) are refused."""
    raw = _mapping(raw, "trainer")
    valid, hints = _trainer_signature()
    for key, value in raw.items():
        if key not in valid:
            raise unknown_key("trainer.", key, valid)
        if key in _TRAINER_RESERVED:
            raise ValueError(f"trainer.{key} is set by mtlswin itself (run folder {_TRAINER_RESERVED[key]}); remove it")
        if key == "max_epochs":
            raise ValueError(
                f"trainer.max_epochs ({value!r}) would override {epochs_key}, which also sets the length of the "
                f"learning-rate schedule; set {epochs_key} instead and remove trainer.max_epochs"
            )
        raw[key] = check_type(f"trainer.{key}", value, hints.get(key, typing.Any))
    _check_devices(raw.get("devices", "auto"))
    return raw


def _check_devices(devices: Any) -> None:
    """``trainer.devices``: ``"auto"``, a count (``-1`` = all), a list of indices or a string of them (``"0,1"``)."""
    text = str(devices).strip() if isinstance(devices, str) else None
    if text is not None and text != "auto" and not all(p.strip().lstrip("-").isdigit() for p in text.split(",")):
        raise ValueError(
            f"trainer.devices must be 'auto', a number of devices (e.g. 2, -1 for all) or a list of device indices "
            f"(e.g. [0, 1] or '0,1'), got {devices!r}"
        )


def apply_overrides(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...], sections: tuple[str, ...]
) -> dict[str, Any]:
    """Apply ``"section.key=value"`` strings (values parsed as YAML) to a raw config dict; returns a new dict.

    Keys may go deeper (``train.guidance.weight=5``); a bare name met on the way (``guidance: rrr``) stands
    for ``{name: rrr}``, so an override of one setting keeps the name it was written with.
    """
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like 'section.key=value', e.g. 'train.lr=0.1'")
        key, _, text = item.partition("=")
        parts = key.strip().split(".")
        if len(parts) < 2:
            raise ValueError(f"override key {key!r} must name a section and a key, e.g. 'train.lr'")
        if parts[0] not in sections:
            raise unknown_key("", parts[0], list(sections))
        node = raw
        for part in parts[:-1]:
            if isinstance(node.get(part), str):
                node[part] = {"name": node[part]}
            elif not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ValueError(f"override {item!r}: the value {text!r} is not valid YAML") from err
        node[parts[-1]] = value
    return raw


def _read_yaml(path: Path, missing_hint: str) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist; {missing_hint}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config file {str(path)!r}{where}: not valid YAML ({problem})") from err


def load_yaml_config(
    path: str | Path | None,
    overrides: list[str] | tuple[str, ...],
    sections: tuple[str, ...],
    build: Callable[[dict[str, Any], str | None], T],
    missing_hint: str,
) -> T:
    """``build(raw, name)`` of the YAML file ``path`` (``{}`` for None) with ``overrides`` applied.

    ``name`` (the default run name) is the file's stem, or its folder's name for a run folder's
    ``config.yaml``; ``missing_hint`` ends the error for a file that does not exist.
    """
    raw: dict[str, Any] = {}
    name = None
    if path is not None:
        path = Path(path)
        raw = _read_yaml(path, missing_hint)
        name = path.stem if path.name != "config.yaml" else path.parent.name
    check_sections(raw, sections)
    return build(apply_overrides(raw, overrides, sections), name)


def save_yaml_config(raw: dict[str, Any], path: str | Path) -> None:
    """Write a config dict (``Config.to_dict()``) as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(plain(raw), sort_keys=False))
