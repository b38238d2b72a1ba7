"""``mtlswin plan``: seeds, runs and hours per claim from a reproduce folder of hand-written files of the real
format; one claim checked by hand against statsmodels."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import TTestPower

from mtlswin.cli import main
from mtlswin.pipeline.claims import CLAIM_COLUMNS
from mtlswin.pipeline.plan import PLAN_COLUMNS, Assumptions, plan_markdown, plan_table, run_seconds, with_roles
from mtlswin.pipeline.presets import get_preset

SECONDS = {"swin": 300.0, "mtl_cls_seg": 600.0, "joint_swin": 400.0, "swin_unet": 500.0}
PER_SEED = {  # the per-seed differences of the three claims (MTL and Joint against Swin on test B, Swin's drop)
    ("auc_b", "mtl_cls_seg", "swin"): [-0.070, 0.023, -0.012],
    ("auc_b", "joint_swin", "swin"): [-0.052, -0.019, -0.031],
    ("drop", "swin", ""): [0.361, 0.203, 0.260],
}
PATIENT_VAR = 0.0002  # of the mean over the 3 seeds: one test set's v1 = 3 * .0002


def _claims_csv(new_columns: bool = True) -> pd.DataFrame:
    rows = []
    for (stat, row, ref), d in PER_SEED.items():
        d = np.array(d)
        se = math.sqrt(d.var(ddof=1) / 3 + PATIENT_VAR)
        rec = {"claim": f"{row} vs {ref or 0} on {stat}", "statistic": stat, "row": row, "reference": ref,
               "expected": "> 0", "estimate": d.mean(), "low": d.mean() - 4.3 * se, "high": d.mean() + 4.3 * se,
               "half_width": 4.3 * se, "se": se, "seeds": 3, "verdict": "inconclusive",
               **{f"seed{k}": v for k, v in enumerate(d)}, "patient_low": -0.05, "patient_high": 0.05, "mde": 0.1,
               "paper": {"auc_b": 0.016 if row == "mtl_cls_seg" else 0.015, "drop": 0.191}[stat],
               "paper_detectable": False, "not_learned": "", "n_not_learned": 0}  # fmt: skip
        if new_columns:
            rec.update(df=2.5, t=d.mean() / se, p=0.3, patient_var=PATIENT_VAR, patient_df=3 * 59, test_sets=3,
                       role="control" if stat == "drop" else "primary", sign=1)  # fmt: skip
        rows.append(rec)
    return pd.DataFrame(rows)


def _events(run, seconds: float) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "logs"))  # its first event (the file version) is stamped now
    for step, wall in enumerate(np.linspace(time.time(), time.time() + seconds, 5)):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step, walltime=float(wall))
    writer.close()


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "demo"
    for row, seconds in SECONDS.items():
        for k in range(3):
            run = out / "runs" / f"{row}-seed{k}"
            run.mkdir(parents=True)
            _events(run, seconds + 10 * (k - 1))  # median = SECONDS[row]
    (out / "data" / "seed-0").mkdir(parents=True)  # the layout of a draw per seed
    _claims_csv().to_csv(out / "claims.csv", index=False)
    return out


def test_run_seconds_from_the_events_or_the_files(tmp_path):
    run = tmp_path / "swin-seed0"
    run.mkdir()
    _events(run, 123.0)
    assert run_seconds(run) == pytest.approx(123.0, abs=0.01)
    other = tmp_path / "swin-seed1"
    other.mkdir()
    for name, when in (("config.yaml", 1000.0), ("model.safetensors", 1400.0)):
        (other / name).write_text("x")
        os.utime(other / name, (when, when))
    assert run_seconds(other) == 400.0
    assert math.isnan(run_seconds(tmp_path / "nothing"))


def test_plan_of_a_folder_matches_statsmodels_by_hand(folder):
    assert main(["plan", str(folder), "--slots", "2", "--gpu-speedup", "20", "--nodes", "4"]) == 0
    plan = pd.read_csv(folder / "plan.csv")
    assert list(plan.columns[: len(PLAN_COLUMNS)]) == list(PLAN_COLUMNS)
    assert {"hours_gpu", "hours_nodes", "estimand", "measured"} <= set(plan.columns)
    assert len(plan) == 2 * len(PER_SEED)  # both estimands per claim
    r = plan[(plan["row"] == "mtl_cls_seg") & (plan["estimand"] == "data sets like it")].iloc[0]
    d = np.array(PER_SEED[("auc_b", "mtl_cls_seg", "swin")])
    sd, v1 = d.std(ddof=1), 3 * PATIENT_VAR
    assert r["measured"] and r["sd"] == pytest.approx(sd) and r["patient_sd"] == pytest.approx(math.sqrt(v1))
    # by hand: statsmodels' one-sample t power at effect size .016 / sqrt(sd^2 + v1), two-sided .05, power .8
    n = TTestPower().solve_power(effect_size=0.016 / math.sqrt(sd**2 + v1), alpha=0.05, power=0.8,
                                 alternative="two-sided")  # fmt: skip
    assert r["seeds_needed_paper"] == math.ceil(n)
    assert r["sd_upper"] == pytest.approx(2.1170 * sd, rel=1e-3)  # chi-square, 2 df, 80% upper
    assert r["seeds_needed_paper_upper"] > r["seeds_needed_paper"]
    assert r["seeds_needed_observed"] == math.ceil(TTestPower().solve_power(
        effect_size=abs(d.mean()) / math.sqrt(sd**2 + v1), alpha=0.05, power=0.8, alternative="two-sided"))  # fmt: skip
    # hours: seeds x (MTL's run + Swin's run) / 2 slots here; one GPU 20 times faster than a slot; 4 such GPUs
    assert r["runs_needed"] == 2 * r["seeds_needed_paper"]
    assert r["hours_here"] == pytest.approx(r["seeds_needed_paper"] * 900 / 2 / 3600, rel=1e-4)
    assert r["hours_gpu"] == pytest.approx(r["seeds_needed_paper"] * 900 / 20 / 3600, rel=1e-4)
    assert r["hours_nodes"] == pytest.approx(r["hours_gpu"] / 4)
    # Joint-Swin's seed also trains the Swin-Unet it freezes
    joint = plan[(plan["row"] == "joint_swin") & plan["measured"]].iloc[0]
    assert joint["rows_per_seed"].split(";") == ["joint_swin", "swin", "swin_unet"]
    assert joint["hours_here"] == pytest.approx(joint["seeds_needed_paper"] * 1200 / 2 / 3600, rel=1e-4)
    # one shared draw: the test patients' sd (.024) alone is larger than .016 / 2.8: never
    shared = plan[(plan["row"] == "mtl_cls_seg") & (plan["estimand"] == "this data set")].iloc[0]
    assert not shared["measured"] and shared["seeds_needed_paper"] == math.inf and shared["hours_here"] == math.inf
    # Swin's drop (+.191) is decided with few seeds either way
    drop = plan[plan["statistic"] == "drop"]
    assert (drop["seeds_needed_paper"] <= 6).all()
    text = (folder / "plan.md").read_text()
    assert 'This run answers **"data sets like it"**' in text and "**assumed** 20 times faster" in text
    assert "| never |" in text and text.index("| primary |") < text.index("| control |")


def test_a_claims_table_of_before_issue_37_is_planned_too(folder):
    old = with_roles(_claims_csv(new_columns=False), get_preset("demo").claims)
    assert old.set_index("statistic").loc["drop", "role"] == "control"
    new = plan_table(_claims_csv(), {k: v for k, v in SECONDS.items()}, Assumptions(2))
    again = plan_table(old, dict(SECONDS), Assumptions(2), draw_per_seed=True)
    cols = ["seeds_needed_paper", "seeds_needed_paper_upper", "seeds_needed_observed", "hours_here"]
    pd.testing.assert_frame_equal(again[cols], new[cols])  # v1 recovered from se^2 - s^2 / K


def test_plan_refuses_a_folder_without_claims(tmp_path, capsys):
    assert main(["plan", str(tmp_path)]) == 1
    assert "claims.csv does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="slots"):
        Assumptions(0)


def test_a_folder_whose_rows_make_no_claim_plans_nothing_instead_of_failing(tmp_path):
    # rows swin_unet,joint_swin compare with nothing: claims.csv has its columns and no line
    path = tmp_path / "claims.csv"
    pd.DataFrame(columns=list(CLAIM_COLUMNS)).to_csv(path, index=False)
    claims = with_roles(pd.read_csv(path), get_preset("demo").claims)
    table = plan_table(claims, {}, Assumptions(slots=2))
    assert table.empty and list(table.columns[: len(PLAN_COLUMNS)]) == list(PLAN_COLUMNS)
    assert "nothing to plan" in plan_markdown(table, Assumptions(slots=2), "data sets like it")
