"""The alternatives' preset: its rows and comparisons, the derived DFR row's place, and the methods table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtlswin.pipeline.claims import method_claims
from mtlswin.pipeline.configs import config_path
from mtlswin.pipeline.methods import methods_markdown, methods_table
from mtlswin.pipeline.presets import METHODS, get_preset
from mtlswin.pipeline.rows import ordered_rows, row_labels


def test_methods_preset_rows_have_configs_and_come_in_dependency_order():
    preset = get_preset("methods")
    assert preset.draw_per_seed and preset.cue_probe and preset.phantom_options["trap_hospitals"] == 2
    for row in preset.rows:
        if row != "swin_dfr":  # made from the trained swin run, not trained
            assert config_path(preset, row).is_file()
    order = ordered_rows(preset.rows)
    assert order.index("swin_unet") < order.index("seg_gated_swin")  # its frozen segmenter
    assert order.index("swin") < order.index("swin_dfr") and order[-1] == "swin_dfr"
    axis = get_preset("mask-budget").axis
    assert axis is not None and axis.kind == "mask_budget" and axis.values == (1.0, 0.3, 0.1)


def test_method_claims_compare_each_method_with_swin_and_mtl_with_each_method():
    claims = method_claims(METHODS)
    against_swin = [c for c in claims if c.reference == "swin"]
    mtl_against = [c for c in claims if c.row == "mtl_cls_seg" and c.reference != "swin"]
    assert len(against_swin) == 4 * len(METHODS) and len(mtl_against) == 4 * (len(METHODS) - 1)
    signs = {c.statistic: c.sign for c in claims}
    assert signs == {"auc_b": 1, "auc_trap": 1, "worst_group_b": 1, "cue_b": -1}


def _run(root, name, auc_b, probe=None, group=0.4):
    run = root / name
    run.mkdir()
    metrics = {
        "test_a": {"auc": 0.9},
        "test_b": {"auc": auc_b, "cue_sensitivity": 0.2, "group_acc": {"worst_group_acc": group}},
        "test_trap": {"auc": 1 - auc_b},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    if probe is not None:
        (run / "cue_probe.json").write_text(json.dumps({"auc": probe}))
    return run


def test_methods_table_means_over_seeds_and_counts_runs_that_did_not_learn(tmp_path):
    runs = [_run(tmp_path, "swin-seed0", 0.6, 0.9), _run(tmp_path, "swin-seed1", 0.7, 0.8),
            _run(tmp_path, "swin_rrr-seed0", 0.8, group=0.0)]  # fmt: skip
    (runs[2] / "predictions").mkdir()
    pd.DataFrame({"prob": [0.1] * 100, "pred": [0] * 100}).to_csv(runs[2] / "predictions" / "test_b.csv")
    table = methods_table(runs)
    assert list(table["row"]) == ["swin", "swin", "swin_rrr"]
    assert table.loc[2, "not_learned"] == "test_b: 100.0% predicted negative"
    assert table.loc[0, "auc_trap"] == pytest.approx(0.4) and np.isnan(table.loc[2, "cue_probe_b"])
    text = methods_markdown(table, row_labels())
    swin_line = next(line for line in text.splitlines() if "(`swin`)" in line)
    assert swin_line.endswith(
        "| 2 | 0 | .900 ± .000 | .650 ± .071 | .350 ± .071 | .400 ± .000 | .200 ± .000 | .850 ± .071 |"
    )
    rrr_line = next(line for line in text.splitlines() if "(`swin_rrr`)" in line)
    assert "| 1 | 1 (swin_rrr-seed0) |" in rrr_line
