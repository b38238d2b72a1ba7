"""``mtlswin tune``: equal budgets, the two selection rules of docs/tuning.md, and the settings reaching a rerun."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from micro_runs import MICRO_RUN, set_args
from mtlswin.cli import main
from mtlswin.config import load_config
from mtlswin.pipeline.configs import config_path
from mtlswin.pipeline.experiment_data import SeedData
from mtlswin.pipeline.presets import get_preset
from mtlswin.pipeline.schedule import build_schedule
from mtlswin.pipeline.tune import (
    GRIDS,
    _write_selected,
    select,
    selected_overrides,
    trial_name,
    trial_table,
    tuned_text,
)
from mtlswin.pipeline.tune_pretrain import TRIALS, decision


def _table(rows: list[tuple[str, bool, float, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [{"row": "swin_rrr", "value": v, "a_priori": a, "val_auc": auc, "val_worst_group_acc": wg, "learned": ok}
         for v, a, auc, wg, ok in rows]
    )  # fmt: skip


def test_every_method_gets_the_same_five_trials_with_its_a_priori_setting_among_them():
    assert {len(g.values) for g in GRIDS.values()} == {5}
    assert set(GRIDS) == {"swin_rrr", "swin_cam_align", "swin_groupdro", "seg_gated_swin", "mtl_cls_seg"}
    preset = get_preset("methods")
    shipped = {
        "swin_rrr": lambda c: c.train.guidance.weight,
        "swin_cam_align": lambda c: c.train.guidance.weight,
        "swin_groupdro": lambda c: c.train.objective.eta,
        "seg_gated_swin": lambda c: c.model.options["gate_radius"],
        "mtl_cls_seg": lambda c: (0.4, 0.6),  # no loss_weights in the YAML: the paper's cls+seg weights
    }
    for row, grid in GRIDS.items():
        assert grid.a_priori in grid.values
        # the a-priori setting is the one the methods preset trains without --tuned
        assert shipped[row](load_config(config_path(preset, row), [])) == grid.a_priori
        # each trial's overrides set what the grid names, and nothing else of the recipe
        cfg = load_config(config_path(preset, row), grid.overrides(grid.values[0]))
        assert shipped[row](cfg) == grid.values[0] or row == "mtl_cls_seg"
    weights = load_config(config_path(preset, "mtl_cls_seg"), GRIDS["mtl_cls_seg"].overrides((0.1, 0.9)))
    assert weights.train.loss_weights == {"cls": 0.1, "seg": 0.9}


def test_rule_a_takes_the_best_validation_auc_among_the_trials_that_learned():
    table = _table([("0.001", False, 0.91, 0.10, True), ("0.01", False, 0.95, 0.20, False),
                    ("0.1", False, 0.93, 0.50, True), ("10", True, 0.80, 0.70, True)])  # fmt: skip
    assert select(table, "val_auc")["value"] == "0.1"  # .95 did not learn: not eligible


def test_rule_b_takes_the_best_worst_group_accuracy_then_the_auc():
    table = _table([("0.001", False, 0.91, 0.60, True), ("0.1", False, 0.93, 0.60, True),
                    ("10", True, 0.80, 0.40, True)])  # fmt: skip
    assert select(table, "worst_group")["value"] == "0.1"  # tie at .60: the higher AUC
    assert select(table, "val_auc")["value"] == "0.1"


def test_exact_ties_go_to_the_a_priori_setting_and_none_learned_selects_nothing():
    tied = _table([("0.001", False, 0.9, 0.5, True), ("10", True, 0.9, 0.5, True)])
    assert select(tied, "val_auc")["value"] == "10" and select(tied, "worst_group")["value"] == "10"
    none = _table([("0.001", False, 0.55, 0.0, False), ("10", True, 0.58, 0.0, False)])
    assert select(none, "val_auc") is None and select(none, "worst_group") is None
    with pytest.raises(ValueError, match="unknown selection rule 'best'"):
        select(tied, "best")


def _fake_trial(runs, name: str, auc: float, worst: float, preds: list[int]) -> None:
    run = runs / name
    (run / "logs").mkdir(parents=True)
    (run / "predictions").mkdir()
    pd.DataFrame({"epoch": [0, 1], "val/auc": [auc - 0.1, auc]}).to_csv(run / "logs" / "metrics.csv", index=False)
    (run / "metrics.json").write_text(json.dumps({"val": {"group_acc": {"worst_group_acc": worst}}}))
    pd.DataFrame({"pred": preds, "prob": [0.5] * len(preds)}).to_csv(run / "predictions" / "val.csv", index=False)


def test_the_selected_settings_reach_the_rerun_and_its_report(tmp_path):
    grid = GRIDS["swin_groupdro"]
    runs = tmp_path / "runs"
    scores = {1e-4: (0.90, 0.30), 1e-3: (0.92, 0.20), 1e-2: (0.88, 0.55), 1e-1: (0.95, 0.60), 1.0: (0.97, 0.70)}
    trials = {}
    for value, (auc, worst) in scores.items():
        name = trial_name(grid, value)
        # eta 1: collapsed (every validation slice predicted positive), so it cannot be selected
        _fake_trial(runs, name, auc, worst, [1] * 100 if value == 1.0 else [0, 1] * 50)
        trials[name] = ("swin_groupdro", value)
    for value in GRIDS["swin_rrr"].values:  # RRR never learned at any setting
        name = trial_name(GRIDS["swin_rrr"], value)
        _fake_trial(runs, name, 0.55, 0.0, [0] * 100)
        trials[name] = ("swin_rrr", value)
    table = trial_table(runs, trials)
    dro = table[table["row"] == "swin_groupdro"].set_index("value")
    assert dro.loc["1", "why_not"] == "val: 100.0% predicted positive"
    assert dro.loc["0.0001", "val_auc"] == pytest.approx(0.90)  # the best logged
    preset = get_preset("methods")
    selected = _write_selected(tmp_path, preset, table)
    picks = selected.set_index(["rule", "row"])["value"]
    assert picks[("val_auc", "swin_groupdro")] == "0.1" and picks[("worst_group", "swin_groupdro")] == "0.1"
    assert picks[("val_auc", "swin_rrr")] == "did not learn at any setting"
    settings = selected_overrides(tmp_path, "worst_group")
    assert settings == {"swin_groupdro": ["train.objective.eta=0.1"]}  # RRR: none, it keeps its own
    assert "eta: 0.1" not in config_path(preset, "swin_groupdro").read_text()
    written = load_config(tmp_path / "selected" / "worst_group" / "swin_groupdro.yaml", [])
    assert written.train.objective.eta == 0.01  # the YAML as shipped, the setting in its header
    assert "train.objective.eta=0.1" in (tmp_path / "selected" / "worst_group" / "swin_groupdro.yaml").read_text()
    data = {0: SeedData(tmp_path / "m.csv", tmp_path / "s.csv", tmp_path / "cache")}
    schedule = build_schedule(preset, ["swin_groupdro", "swin_rrr"], [0], tmp_path / "out", data, {0: ("val",)},
                              ["train.epochs=1"], settings)  # fmt: skip
    by_row = {r.row: r for r in schedule.train}
    # the row's setting comes before the user's overrides, and only that row gets it
    assert by_row["swin_groupdro"].overrides[-2:] == ("train.objective.eta=0.1", "train.epochs=1")
    assert not any("eta" in o for o in by_row["swin_rrr"].overrides)
    text = tuned_text((tmp_path, "worst_group"), settings)
    assert "`swin_groupdro`: `train.objective.eta` = 0.1" in text
    assert "`swin_rrr`: did not learn at any setting; trained at its a-priori `train.guidance.weight` = 10" in text


def test_a_row_selected_at_its_a_priori_setting_trains_as_in_the_a_priori_preset(tmp_path):
    grid = GRIDS["swin_groupdro"]
    runs, trials = tmp_path / "runs", {}
    for value in grid.values:  # the a-priori eta .01 has the best validation AUC and worst-group accuracy
        name = trial_name(grid, value)
        best = value == grid.a_priori
        _fake_trial(runs, name, 0.95 if best else 0.90, 0.5 if best else 0.2, [0, 1] * 50)
        trials[name] = ("swin_groupdro", value)
    preset = get_preset("methods")
    _write_selected(tmp_path, preset, trial_table(runs, trials))
    settings = selected_overrides(tmp_path, "val_auc")
    assert settings == {}  # no override: the run's config and digest are the a-priori run's
    data = {0: SeedData(tmp_path / "m.csv", tmp_path / "s.csv", tmp_path / "cache")}
    tuned = build_schedule(preset, ["swin_groupdro"], [0], tmp_path / "out", data, {0: ("val",)}, [], settings)
    plain = build_schedule(preset, ["swin_groupdro"], [0], tmp_path / "out", data, {0: ("val",)}, [])
    assert tuned.train[0].digest == plain.train[0].digest
    text = tuned_text((tmp_path, "val_auc"), settings)
    assert "`swin_groupdro`: `train.objective.eta` = 0.01, its a-priori setting (selected again" in text


def test_reproduce_refuses_tuned_without_a_rule_and_a_missing_search(tmp_path, capsys):
    assert main(["reproduce", "--preset", "methods", "--out", str(tmp_path), "--tuned", str(tmp_path)]) == 1
    assert "--tuned and --rule go together" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=r"selected\.csv does not exist: run `mtlswin tune"):
        selected_overrides(tmp_path, "val_auc")


@pytest.mark.slow
def test_tune_micro_scale_writes_the_trial_table_and_dfr_selection(tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["tune", "--out", str(out), "--rows", "swin_groupdro", "--slices", "300", "--jobs", "2"]
    assert main([*args, *set_args(["train.epochs=1", *MICRO_RUN])]) == 0
    table = pd.read_csv(out / "trials.csv", dtype={"value": str})
    assert list(table["value"]) == ["0.0001", "0.001", "0.01", "0.1", "1"]
    assert table["val_auc"].between(0, 1).all() and table["val_worst_group_acc"].between(0, 1).all()
    for run in table["run"]:  # each trial trained with its own eta, on draw 9000
        config = load_config(out / "runs" / run / "config.yaml", [])
        assert f"{config.train.objective.eta:g}" == table.loc[table["run"] == run, "value"].item()
    assert json.loads((out / "data" / "seed-0" / "phantom" / "phantom.json").read_text())["config"]["seed"] == 9000
    dfr = pd.read_csv(out / "dfr_trials.csv")
    assert len(dfr) == 7 and dfr["selected"].sum() == 1  # the paper's C grid, one chosen inside DFR
    assert set(pd.read_csv(out / "selected.csv")["rule"]) == {"val_auc", "worst_group"}
    assert "## swin_groupdro: train.objective.eta" in (out / "tune.md").read_text()
    # a rerun finds every stage done and trains nothing
    capsys.readouterr()
    assert main([*args, *set_args(["train.epochs=1", *MICRO_RUN])]) == 0
    printed = capsys.readouterr().out
    assert "started" not in printed and "train swin_groupdro@0.1-seed0: skipped" in printed


def test_pretraining_decision_compares_mean_test_a_auc_with_scratch():
    comparison = pd.DataFrame({"init": ["SimMIM (base)"] * 3 + ["from scratch"] * 3,
                               "test_a_auc": [0.70, 0.72, 0.74, 0.90, 0.92, 0.94]})  # fmt: skip
    assert decision(comparison) == (pytest.approx(0.72), pytest.approx(0.92), False)
    comparison["test_a_auc"] = [0.95, 0.93, 0.94, 0.90, 0.92, 0.94]
    assert decision(comparison)[2] is True
    # one setting changed at a time from the base, the base first (ties go to it)
    base = TRIALS[0]
    assert base.name == "base" and (base.lr, base.warmup, base.mask_patch, base.epochs) == (5e-4, 60, 16, 20)
    for trial in TRIALS[1:]:
        changed = [f for f in ("lr", "warmup", "mask_patch", "epochs") if getattr(trial, f) != getattr(base, f)]
        assert len(changed) == 1


@pytest.mark.slow
def test_tune_pretrain_micro_scale_pretrains_selects_and_compares(tmp_path):
    out = tmp_path / "pt"
    args = ["tune", "--pretrain", "--out", str(out), "--slices", "300", "--corpus-slices", "60", "--jobs", "2"]
    pretrain = [
        "pretrain.epochs=1",
        "trainer.limit_train_batches=2",
        "data.batch_size=8",
        *(o for o in MICRO_RUN if o.startswith("model.")),
    ]  # the encoder the fine-tuning builds
    assert main([*args, *set_args(["train.epochs=1", *MICRO_RUN]), *(a.replace("--set", "--pretrain-set")
                                                                       for a in set_args(pretrain))]) == 0  # fmt: skip
    # three pretrainings: the base, mask patch 8, and the longer one (lr and warm-up trials share the base's)
    assert sorted(p.name for p in (out / "pretrain").iterdir()) == ["pretrain-p16-e20", "pretrain-p16-e40",
                                                                    "pretrain-p8-e20"]  # fmt: skip
    trials = pd.read_csv(out / "pretrain_trials.csv")
    assert list(trials["trial"]) == [t.name for t in TRIALS] and trials["val_auc"].between(0, 1).all()
    config = load_config(out / "runs" / "swin@lr1e-4-seed0" / "config.yaml", [])
    assert config.train.lr == 1e-4 and "pretrain-p16-e20" in str(config.model.options["pretrained"])
    compare = pd.read_csv(out / "pretrain_compare.csv")
    assert list(compare["seed"]) == [0, 1, 2, 0, 1, 2] and compare["test_a_auc"].between(0, 1).all()
    assert (compare["init"] == "from scratch").sum() == 3
    assert "**Decision:**" in (out / "pretrain.md").read_text()
