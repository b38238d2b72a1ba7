"""The whole pipeline at micro scale: phantom -> splits -> train -> evaluate -> audit -> report."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from PIL import Image

from micro_runs import MICRO_RUN, set_args
from mtlswin.cli import main
from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.pipeline.configs import config_path, row_overrides
from mtlswin.pipeline.presets import get_preset
from mtlswin.pipeline.rows import ordered_rows, table1_rows
from mtlswin.pipeline.stages import Progress, time_table

MICRO = ["train.epochs=1", *MICRO_RUN]
ROWS = ["swin", "joint_swin", "mtl_cls_seg"]


def test_every_preset_row_has_a_shipped_config():
    for preset in ("demo", "demo-full", "paper"):
        p = get_preset(preset)
        assert set(p.rows) <= set(table1_rows())
        for row in p.rows:
            assert config_path(p, row).is_file()
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def test_segmentation_run_is_trained_before_the_joint_rows():
    assert ordered_rows(("joint_swin", "swin")) == ["swin_unet", "swin", "joint_swin"]


@pytest.mark.slow
def test_reproduce_micro_scale_writes_every_artefact(tmp_path, capsys):
    out = tmp_path / "demo"
    args = [
        "reproduce",
        "--preset",
        "demo",
        "--out",
        str(out),
        "--slices",
        "400",
        "--seeds",
        "0",
        "--rows",
        ",".join(ROWS),
        "--jobs",
        "2",
    ]
    assert main([*args, *set_args(MICRO)]) == 0
    captured = capsys.readouterr()
    first = captured.out
    assert "report:" in first and "train swin_unet-seed0: done" in first
    assert "4 of 4 runs done" in first  # overall progress of the training stage
    # two runs at a time: each worker evaluates its run once trained, so no evaluation stage runs afterwards
    assert first.count(", evaluated in ") == 4 and "evaluate swin-seed0: running" not in first
    for noise in ("Seed set to", "GPU available:", "module(s) in eval mode"):  # Lightning's noise is gone
        assert noise not in first + captured.err

    report = (out / "report.md").read_text()
    assert "## Results (Table 1 layout)" in report
    assert "| train and evaluate 4 runs, 2 at a time |" in report  # the time table
    assert "## Runs that did not learn" in report and "| did not learn |" in report
    # the demo's departures from the paper's protocol, the test sets' sizes and the claims with verdicts
    assert "25% of hospital 1" in report and "every slice of hospitals 5-11" in report and "test_b" in report
    assert "## The paper's claims, tested" in report
    assert "## What deciding would take" in report and "adjusted verdict (Holm)" in report
    claims = pd.read_csv(out / "claims.csv")
    assert "swin" in set(claims["row"]) and claims["verdict"].str.match("held|did not hold|inconclusive").all()
    # one seed: per-seed value and the patients' interval, but no interval over seeds and so no verdict
    assert (claims["seeds"] == 1).all() and claims["verdict"].str.startswith("inconclusive (one seed").all()
    assert claims["seed0"].notna().all() and (claims["patient_low"] <= claims["patient_high"]).all()
    metrics_b = json.loads((out / "runs" / "swin-seed0" / "metrics.json").read_text())["test_b"]
    assert metrics_b["n_twins"] == metrics_b["n"] and 0 <= metrics_b["cue_sensitivity"] <= 1
    assert "The paper's Table 1, for orientation" in report and "| .799 |" in report
    assert "different data" in report
    for row in ["Swin Transformer (`swin`)", "Swin-Unet (`swin_unet`)", "Joint-SwinTransformer (`joint_swin`)"]:
        assert row in report
    # Every figure the report links exists and is a real PNG.
    for name in ["roc.png", "training_curves.png", "confusion.png", "gradcam_grid.png"]:
        assert f"({name})" in report
        with Image.open(out / name) as im:
            assert im.format == "PNG" and min(im.size) > 100
    table = pd.read_csv(out / "table1.csv")
    assert len(table) == 4
    audit = pd.read_csv(out / "audit" / "audit.csv")
    assert {"swin-seed0", "joint_swin-seed0", "mtl_cls_seg-seed0"} <= set(audit.iloc[:, 0].astype(str))
    for run in ["swin_unet", *ROWS]:
        metrics = json.loads((out / "runs" / f"{run}-seed0" / "metrics.json").read_text())
        assert {"test_a", "test_b"} <= set(metrics)
    # the worker's metrics (one thread) are those of evaluating the run here (the test's threads)
    worker = json.loads((out / "runs" / "mtl_cls_seg-seed0" / "metrics.json").read_text())
    copy = shutil.copytree(out / "runs" / "mtl_cls_seg-seed0", tmp_path / "copy")  # the run itself stays as it is
    here = evaluate_run(copy, ("test_a", "test_b"))
    for split in ("test_a", "test_b"):
        numbers = [k for k, v in here[split].items() if isinstance(v, float)]
        assert {"auc", "iou", "f1_macro"} <= set(numbers)
        stored = [float("nan") if worker[split][k] is None else worker[split][k] for k in numbers]  # JSON: NaN as null
        assert stored == pytest.approx([here[split][k] for k in numbers], abs=1e-6, nan_ok=True)

    # A second call finds every stage done and skips it.
    assert main([*args, *set_args(MICRO)]) == 0
    second = capsys.readouterr().out
    assert "running" not in second
    assert (
        second.count("skipped (valid output exists)") == 2 + 4 + 4 + 1 + 1
    )  # data, splits, train, eval, audit, claims
    times = (out / "report.md").read_text().split("## Time per stage")[1]  # reused stages are not shown as 0.0 s
    assert times.count("| skipped (its output existed) |") == 12 and times.count("| 0.0 |") == 1  # the total


def test_joint_swin_tiny_brings_its_own_swin_t_segmentation_run():
    rows = ordered_rows(("joint_swin_tiny",))
    assert rows == ["swin_unet_tiny", "joint_swin_tiny"]
    assert row_overrides(get_preset("paper"), "swin_unet_tiny") == ["model.depths=[2,2,6,2]"]
    with pytest.raises(ValueError, match="unknown rows"):
        ordered_rows(("resnet50",))


@pytest.mark.slow
def test_each_seed_trains_and_is_tested_on_its_own_phantom_draw(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["reproduce", "--preset", "demo", "--out", str(out), "--slices", "300", "--seeds", "0,1",
            "--rows", "swin,mtl_cls_seg", "--phantom-seed", "2"]  # fmt: skip
    assert main([*args, *set_args(MICRO)]) == 0
    assert "4 of 4 runs done" in capsys.readouterr().out
    for seed in (0, 1):
        info = json.loads((out / "data" / f"seed-{seed}" / "phantom" / "phantom.json").read_text())
        assert info["config"]["seed"] == 2000 + seed  # draw k of master seed M: 1000 * M + k
        for row in ("swin", "mtl_cls_seg"):  # the rows of one seed share its draw
            config = (out / "runs" / f"{row}-seed{seed}" / "config.yaml").read_text()
            assert str(out / "data" / f"seed-{seed}" / "phantom" / "manifest.csv") in config
    claims = pd.read_csv(out / "claims.csv")
    mtl_b = claims[(claims["statistic"] == "auc_b") & (claims["row"] == "mtl_cls_seg")].iloc[0]
    assert mtl_b["seeds"] == 2 and mtl_b["low"] <= mtl_b["estimate"] <= mtl_b["high"]
    assert mtl_b["estimate"] == pytest.approx((mtl_b["seed0"] + mtl_b["seed1"]) / 2)
    assert mtl_b["paper"] == pytest.approx(0.016) and mtl_b["mde"] > 0
    report = (out / "report.md").read_text()
    assert "Each training seed has a phantom draw of its own" in report and "Seed 1 (`seed-1`)" in report


@pytest.mark.slow
def test_methods_preset_micro_scale_trains_derives_probes_and_compares(tmp_path):
    out = tmp_path / "methods"
    args = ["reproduce", "--preset", "methods", "--out", str(out), "--slices", "300", "--seeds", "0,1"]
    assert main([*args, *set_args(MICRO)]) == 0
    runs = out / "runs"
    assert json.loads((runs / "swin_dfr-seed1" / "dfr.json").read_text())  # derived from swin-seed1
    for row in ("swin", "mtl_cls_seg", "swin_rrr", "swin_cam_align", "seg_gated_swin", "swin_groupdro", "swin_dfr"):
        metrics = json.loads((runs / f"{row}-seed0" / "metrics.json").read_text())
        assert {"test_a", "test_b", "test_trap"} <= set(metrics)  # the trap hospitals are scored
        assert 0 <= json.loads((runs / f"{row}-seed0" / "cue_probe.json").read_text())["auc"] <= 1
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == 4 * 6 + 4 * 5 and (claims["seeds"] == 2).all()
    assert set(claims["statistic"]) == {"auc_b", "auc_trap", "worst_group_b", "cue_b"}
    report = (out / "report.md").read_text()
    assert "## The alternatives, side by side" in report and "## The comparisons, tested" in report
    assert "Swin + Deep Feature Reweighting (cue labels) (`swin_dfr`) | 2 |" in report


@pytest.mark.slow
def test_mask_budget_preset_shares_the_draws_and_plots_auc_against_the_budget(tmp_path, capsys):
    out = tmp_path / "budget"
    args = ["reproduce", "--preset", "mask-budget", "--out", str(out), "--slices", "300", "--seeds", "0"]
    assert main([*args, *set_args(MICRO)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("data (phantom draw 0 for seed 0): running") == 1  # one draw for every budget
    assert "train and evaluate 2 runs, 2 at a time [masks 0.3]" in (out / "report.md").read_text()
    for budget in ("1", "0.3", "0.1"):
        config = (out / f"mask-{budget}" / "runs" / "swin_rrr-seed0" / "config.yaml").read_text()
        assert f"mask_fraction: {float(budget)}" in config
        assert str(out / "data" / "seed-0" / "phantom" / "manifest.csv") in config
    table = pd.read_csv(out / "mask_budget.csv")
    assert sorted(table["budget"].unique()) == [0.1, 0.3, 1.0] and set(table["row"]) == {"mtl_cls_seg", "swin_rrr"}
    assert table["auc_trap"].notna().all()
    with Image.open(out / "mask_budget.png") as im:
        assert im.format == "PNG" and min(im.size) > 100


def test_the_time_table_names_the_stages_a_rerun_found_done():
    lines: list[str] = []
    progress = Progress(lines.append)
    progress.stage("data", lambda: True, lambda: None)
    made: list[int] = []
    progress.stage("train", lambda: bool(made), lambda: made.append(1))
    assert progress.skipped == {"data"} and set(progress.timings) == {"data", "train"}
    assert lines[0] == "[1] data: skipped (valid output exists)" and lines[-1].startswith("[2] train: done in")
    table = time_table({"data": 0.0, "train": 12.34, "audit": 0.0}, progress.skipped).splitlines()
    assert table[:4] == ["## Time per stage", "", "| stage | seconds |", "|---|---|"]
    assert table[4:] == ["| data | skipped (its output existed) |", "| train | 12.3 |", "| audit | 0.0 |",
                         "| total | 12.3 |"]  # fmt: skip
