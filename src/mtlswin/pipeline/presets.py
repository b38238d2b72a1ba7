"""Presets of ``mtlswin reproduce``: which Table-1 rows to train, at which size, with which seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlswin.pipeline.paper_table import TABLE1_LABELS

# The 12 rows of the paper's Table 1, in the paper's order (config file stem -> label in tables).
TABLE1_ROWS = TABLE1_LABELS

# Rows whose frozen encoder comes from a trained Swin-Unet run, and the run they need. Joint-Swin-tiny's
# frozen encoder has Swin-T depths, so it needs an auxiliary Swin-Unet trained with them (not a Table-1 row).
SEGMENTATION_RUN_FOR = {"joint_swin": "swin_unet", "joint_swin_tiny": "swin_unet_tiny"}
NEEDS_SEGMENTATION_RUN = tuple(SEGMENTATION_RUN_FOR)
AUXILIARY_ROWS = ("swin_unet_tiny",)


@dataclass(frozen=True)
class Preset:
    """One way to run the paper's experiment.

    ``config_dir`` is the folder of ``configs/`` holding one YAML per row; ``phantom`` the phantom
    preset generated when the user gives no manifest (None: a manifest is required).
    """

    name: str
    config_dir: str
    rows: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    phantom: str | None = "demo"
    overrides: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""


PRESETS: dict[str, Preset] = {
    "demo": Preset(
        name="demo",
        config_dir="demo",
        rows=("swin", "swin_unet", "joint_swin", "mtl_cls_seg", "mtl_cls_seg_rec"),
        seeds=(0, 1, 2),
        phantom="demo",
        description="CPU, headline rows, seeds 0-2, tiny models on the demo phantom (about 12 minutes on 2 cores)",
    ),
    "demo-full": Preset(
        name="demo-full",
        config_dir="demo",
        rows=tuple(TABLE1_ROWS),
        seeds=(0, 1, 2),
        phantom="demo",
        description="CPU, all 12 rows at demo size, three seeds each (roughly 30-60 min on 2 cores)",
    ),
    "paper": Preset(
        name="paper",
        config_dir="paper",
        rows=tuple(TABLE1_ROWS),
        seeds=(0,),
        phantom="paper",
        description="GPU, all 12 rows with the paper's sizes, epochs and hyper-parameters",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ``ValueError`` listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def ordered_rows(rows: tuple[str, ...]) -> list[str]:
    """Rows in training order: the Swin-Unet runs come before the Joint-Swin rows that need them."""
    unknown = [r for r in rows if r not in TABLE1_ROWS]
    if unknown:
        raise ValueError(f"unknown Table-1 rows {unknown}; choose from: {', '.join(TABLE1_ROWS)}")
    rows_list = list(dict.fromkeys(rows))
    for row in rows:
        needed = SEGMENTATION_RUN_FOR.get(row)
        if needed and needed not in rows_list:
            rows_list.append(needed)
    order = [*AUXILIARY_ROWS, *TABLE1_ROWS]
    return sorted(rows_list, key=lambda r: (r in NEEDS_SEGMENTATION_RUN, order.index(r)))
