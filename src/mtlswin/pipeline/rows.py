"""The rows ``mtlswin reproduce`` can train: one :class:`Row` per config, all registered in :data:`ROWS`.

A row is trained from its YAML (``configs/<preset dir>/<config>.yaml``), unless it is *derived*: made from
another row's trained run of the same seed (e.g. ``swin_dfr`` from ``swin``). A row may *need* another trained
row first, whose run folder it receives under ``needs_key`` (the Joint-Swin rows and the segmentation-gated Swin
freeze the encoder of a trained Swin-Unet). An *auxiliary* row is trained only because another row needs it:
it is no row of any table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mtlswin.paper_table import TABLE1_LABELS
from mtlswin.pipeline.derived import dfr_done, make_dfr

__all__ = [
    "DFR",
    "ROWS",
    "Derivation",
    "Row",
    "get_row",
    "method_rows",
    "ordered_rows",
    "row_labels",
    "table1_rows",
]

# Finds a row's YAML for the preset at hand (:func:`mtlswin.pipeline.configs.config_path`).
ConfigOf = Callable[[str], Path]


@dataclass(frozen=True)
class Derivation:
    """How a derived row's run is made from its source run: ``make(run, source)``; ``done(run, source)`` tells
    a run already made from the source's current weights. ``name`` names the step in messages."""

    name: str
    done: Callable[[Path, Path], bool]
    make: Callable[[Path, Path], None]


DFR = Derivation("Deep Feature Reweighting", dfr_done, make_dfr)


@dataclass(frozen=True)
class Row:
    """One row: ``name`` (its run folders are ``<name>-seed<k>``), ``label`` (in tables), ``needs`` (the trained
    row whose run of the same seed it needs first, passed as ``needs_key=<run folder>``), ``derived_from`` and
    ``derivation`` (made from that row's run instead of trained), ``auxiliary`` (trained only because another
    row needs it), ``method`` (a published alternative, compared in the report's alternatives table),
    ``config`` (the YAML stem it trains from; default ``name``) and ``overrides`` (extra ``key=value``
    overrides beyond its YAML, computed from the preset's configs)."""

    name: str
    label: str
    needs: str | None = None
    needs_key: str = "model.frozen_encoder"
    derived_from: str | None = None
    derivation: Derivation | None = None
    auxiliary: bool = False
    method: bool = False
    config: str | None = None
    overrides: Callable[[ConfigOf], list[str]] | None = None

    def __post_init__(self) -> None:
        if (self.derived_from is None) != (self.derivation is None):
            raise ValueError(f"row {self.name!r}: a derived row needs both derived_from and derivation")

    @property
    def config_stem(self) -> str:
        return self.config or self.name

    @property
    def depends_on(self) -> str | None:
        """The row that must be there before this one: the run it needs, or the run it is derived from."""
        return self.needs or self.derived_from


def depths_of(row: str) -> Callable[[ConfigOf], list[str]]:
    """Overrides that give a row ``row``'s encoder depths (read from ``row``'s YAML of the same preset)."""

    def overrides(config_of: ConfigOf) -> list[str]:
        depths = yaml.safe_load(config_of(row).read_text())["model"].get("depths", [2, 2, 6, 2])
        return [f"model.depths=[{','.join(str(d) for d in depths)}]"]

    return overrides


def _register(rows: Iterable[Row]) -> dict[str, Row]:
    registry: dict[str, Row] = {}
    for row in rows:
        if row.name in registry:
            raise ValueError(f"row {row.name!r} registered twice")
        registry[row.name] = row
    for row in registry.values():
        if row.depends_on is not None and row.depends_on not in registry:
            raise ValueError(f"row {row.name!r} depends on unknown row {row.depends_on!r}")
    return registry


_TABLE1_NEEDS = {"joint_swin": "swin_unet", "joint_swin_tiny": "swin_unet_tiny"}

# Every row, in training order (before the ordering by dependency of :func:`ordered_rows`).
ROWS: dict[str, Row] = _register([
    # Joint-Swin-tiny's frozen encoder has Swin-T depths, so it needs a Swin-Unet trained with them.
    Row("swin_unet_tiny", "Swin-Unet (Swin-T depths)", auxiliary=True, config="swin_unet",
        overrides=depths_of("joint_swin_tiny")),
    # The 12 rows of the paper's Table 1, in the paper's order.
    *(Row(name, label, needs=_TABLE1_NEEDS.get(name)) for name, label in TABLE1_LABELS.items()),
    # The published alternatives that use the same masks or cue labels (docs/methods.md).
    Row("swin_rrr", "Swin + Right for the Right Reasons (masks)", method=True),
    Row("swin_cam_align", "Swin + CAM alignment (masks)", method=True),
    Row("seg_gated_swin", "Segmentation for classification (masks)", needs="swin_unet", method=True),
    Row("swin_groupdro", "Swin + GroupDRO (cue labels)", method=True),
    # Not trained: the trained swin run with its last layer refitted (after training, before evaluation).
    Row("swin_dfr", "Swin + Deep Feature Reweighting (cue labels)", derived_from="swin", derivation=DFR, method=True),
])  # fmt: skip


def get_row(name: str) -> Row:
    """The row called ``name``; a ``ValueError`` listing the valid names otherwise."""
    if name not in ROWS:
        raise ValueError(f"unknown row {name!r}; choose from: {', '.join(row_labels())}")
    return ROWS[name]


def table1_rows() -> tuple[str, ...]:
    """The paper's Table-1 rows, in its order."""
    return tuple(r.name for r in ROWS.values() if not r.auxiliary and not r.method)


def method_rows() -> tuple[str, ...]:
    """The published alternatives."""
    return tuple(r.name for r in ROWS.values() if r.method)


def row_labels() -> dict[str, str]:
    """Name -> label of every row a table shows (Table 1, then the alternatives)."""
    return {r.name: r.label for r in ROWS.values() if not r.auxiliary}


def ordered_rows(rows: Iterable[str]) -> list[str]:
    """``rows`` and the rows they depend on, in training order: rows needing no other first, then the rows that
    need a trained run, then the derived rows; within each, the order of :data:`ROWS`."""
    rows = tuple(rows)
    unknown = [r for r in rows if r not in ROWS or ROWS[r].auxiliary]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from: {', '.join(row_labels())}")
    rows_list = list(dict.fromkeys(rows))
    for row in rows:
        needed = ROWS[row].depends_on
        if needed and needed not in rows_list:
            rows_list.append(needed)
    order = list(ROWS)
    return sorted(rows_list, key=lambda r: (ROWS[r].derived_from is not None, ROWS[r].needs is not None,
                                            order.index(r)))  # fmt: skip
