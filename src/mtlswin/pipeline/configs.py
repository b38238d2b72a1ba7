"""Each row's config for a preset: the shipped YAML it trains from and the overrides it needs beyond it."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from mtlswin.config import load_config
from mtlswin.pipeline.presets import Preset
from mtlswin.pipeline.rows import ROWS, get_row
from mtlswin.runs import config_digest

__all__ = ["config_path", "row_digest", "row_overrides"]


def config_path(preset: Preset, row: str) -> Path:
    """The shipped YAML of ``row`` for ``preset`` (``mtlswin/configs/<dir>/<stem>.yaml``, the stem being the
    row's :attr:`~mtlswin.pipeline.rows.Row.config`)."""
    stem = ROWS[row].config_stem if row in ROWS else row
    path = Path(str(resources.files("mtlswin") / "configs" / preset.config_dir / f"{stem}.yaml"))
    if not path.is_file():
        raise FileNotFoundError(f"no config for row {stem!r} of preset {preset.name!r} at {path}")
    return path


def row_overrides(preset: Preset, row: str) -> list[str]:
    """Overrides ``row`` needs beyond its YAML (its :attr:`~mtlswin.pipeline.rows.Row.overrides`), e.g. the
    auxiliary ``swin_unet_tiny`` takes Joint-Swin-tiny's depths."""
    extra = get_row(row).overrides
    return extra(lambda other: config_path(preset, other)) if extra is not None else []


def row_digest(config: Path, overrides: Sequence[str]) -> str:
    """The digest ``train`` will store for this resolved config (:func:`mtlswin.runs.config_digest`)."""
    return config_digest(load_config(config, list(overrides)))
