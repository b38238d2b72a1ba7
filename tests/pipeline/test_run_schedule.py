"""The schedule of runs: which runs, with which configs, overrides and dependencies, and the presets' axes.

The golden files list the schedule of the ``demo`` and ``methods`` presets (seeds 0-2, one phantom draw per
seed under ``/OUT``) as the pipeline built it before the rows, presets and schedule became data: a change in
them changes the runs a preset trains (their folders, configs, seeds) and so the numbers it reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlswin.pipeline.configs import config_path
from mtlswin.pipeline.experiment_data import SeedData
from mtlswin.pipeline.presets import Axis, Point, get_preset
from mtlswin.pipeline.rows import ROWS, Row, get_row, method_rows, ordered_rows, row_labels, table1_rows
from mtlswin.pipeline.schedule import build_schedule

GOLDEN = Path(__file__).parent / "golden"
OUT = Path("/OUT")


def _listing(preset_name: str) -> dict:
    preset = get_preset(preset_name)
    data = {k: SeedData(OUT / "data" / f"seed-{k}" / "phantom" / "manifest.csv", OUT / "data" / f"seed-{k}" / "splits.csv",
                        OUT / "data" / f"seed-{k}" / "cache") for k in preset.seeds}  # fmt: skip
    splits = dict.fromkeys(preset.seeds, ("test_a", "test_b", "test_trap"))
    schedule = build_schedule(preset, preset.rows, preset.seeds, OUT / "runs", data, splits, ["train.epochs=1"])
    configs = config_path(preset, "swin").parent
    return {
        "train": [
            {
                "row": r.row,
                "seed": r.seed,
                "folder": str(r.folder),
                "config": str(r.config.relative_to(configs)),
                "overrides": list(r.overrides),
                "needs": list(r.needs),
                "evaluate": None if r.evaluate is None else list(r.evaluate),
            }
            for r in schedule.train
        ],
        "derived": [
            {
                "row": d.row,
                "seed": d.seed,
                "folder": str(d.folder),
                "source": str(d.source),
                "derivation": d.derivation.name,
            }
            for d in schedule.derived
        ],
        "results": [str(f) for f in schedule.results],
    }


@pytest.mark.parametrize("preset", ["demo", "methods"])
def test_the_schedule_of_a_preset_is_the_golden_one(preset):
    assert _listing(preset) == json.loads((GOLDEN / f"schedule_{preset}.json").read_text())


def test_joint_and_gated_rows_wait_for_their_swin_unet_and_dfr_is_made_from_its_swin():
    listing = _listing("methods")
    needs = {t["folder"].rsplit("/", 1)[1]: t["needs"] for t in listing["train"]}
    assert needs["seg_gated_swin-seed1"] == ["swin_unet-seed1"] and needs["swin-seed1"] == []
    assert f"model.frozen_encoder={OUT / 'runs' / 'swin_unet-seed1'}" in next(
        t["overrides"] for t in listing["train"] if t["folder"].endswith("seg_gated_swin-seed1"))  # fmt: skip
    assert [(d["folder"], d["source"]) for d in listing["derived"]][1] == (
        str(OUT / "runs" / "swin_dfr-seed1"), str(OUT / "runs" / "swin-seed1"))  # fmt: skip
    assert all(not t["folder"].endswith("swin_dfr-seed0") for t in listing["train"])  # derived, not trained


def test_the_registry_holds_every_row_once_with_table_1_labels_from_the_paper():
    from mtlswin.paper_table import TABLE1_LABELS

    assert table1_rows() == tuple(TABLE1_LABELS) and all(ROWS[r].label == TABLE1_LABELS[r] for r in TABLE1_LABELS)
    assert method_rows() == ("swin_rrr", "swin_cam_align", "seg_gated_swin", "swin_groupdro", "swin_dfr")
    assert "swin_unet_tiny" not in row_labels() and get_row("swin_unet_tiny").config_stem == "swin_unet"
    assert get_row("joint_swin_tiny").needs == "swin_unet_tiny" and get_row("swin_dfr").derived_from == "swin"
    with pytest.raises(ValueError, match="unknown row"):
        get_row("resnet50")
    with pytest.raises(ValueError, match="both derived_from and derivation"):
        Row("x", "x", derived_from="swin")
    with pytest.raises(ValueError, match="unknown rows"):
        ordered_rows(("swin_unet_tiny",))  # auxiliary: trained only for the row that needs it


def test_a_preset_varies_one_axis_between_its_sub_experiments():
    assert get_preset("demo").points() == (Point(),)  # no axis: one experiment in OUT
    sweep = get_preset("shortcut-sweep").points()
    assert [(p.folder, p.label, p.spurious, p.overrides, p.shared_data) for p in sweep] == [
        ("spurious-0", "spurious 0", 0.0, (), False), ("spurious-0.5", "spurious 0.5", 0.5, (), False),
        ("spurious-0.9", "spurious 0.9", 0.9, (), False)]  # fmt: skip
    budget = get_preset("mask-budget").points()
    assert [(p.folder, p.label, p.spurious, p.overrides, p.shared_data) for p in budget] == [
        ("mask-1", "masks 1", None, ("data.mask_fraction=1.0",), True),
        ("mask-0.3", "masks 0.3", None, ("data.mask_fraction=0.3",), True),
        ("mask-0.1", "masks 0.1", None, ("data.mask_fraction=0.1",), True)]  # fmt: skip
    with pytest.raises(ValueError, match="unknown axis kind"):
        Axis("epochs", (1.0,))
