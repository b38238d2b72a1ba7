"""``reproduce --until-decided`` with a stub for the experiment: batches, stopping, the control, the budget, and a
rerun after a kill that continues from the looks recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlswin.cli import main
from mtlswin.pipeline import sequential
from mtlswin.pipeline.presets import get_preset
from mtlswin.pipeline.sequential import Design, family_rows, until_decided
from mtlswin.stats import seed_interval

DEMO = Design("demo", ("swin", "swin_unet", "joint_swin", "mtl_cls_seg"))


class Stub:
    """Writes OUT/claims.csv as ``reproduce`` would, from fixed per-seed differences (24 seeds of each claim)."""

    def __init__(self, mtl: float, joint: float, fail_at_call: int | None = None, clock: list[float] | None = None):
        rng = np.random.default_rng(0)
        self.per_seed = {"mtl_cls_seg": mtl + rng.normal(0, 0.03, 24), "joint_swin": joint + rng.normal(0, 0.03, 24),
                         "swin": 0.25 + rng.normal(0, 0.05, 24)}  # fmt: skip
        self.calls: list[tuple[int, bool]] = []
        self.fail_at_call, self.clock = fail_at_call, clock

    def __call__(self, preset: str, out: Path, seeds: list[int], with_audit: bool, **kwargs) -> Path:
        self.calls.append((len(seeds), with_audit))
        if self.fail_at_call is not None and len(self.calls) == self.fail_at_call:
            raise KeyboardInterrupt("killed")  # a kill: nothing of this look is recorded
        if self.clock is not None:
            self.clock[0] += 1200.0
        records = []
        for claim in get_preset(preset).claims:
            if claim.role == "secondary" or claim.row not in self.per_seed:
                continue
            d = self.per_seed[claim.row][: len(seeds)]
            interval = seed_interval(d, d.mean() + 0.004 * np.array([-1.0, 1.0] * 50), patient_df=50)
            records.append({"claim": claim.text, "role": claim.role, "statistic": claim.statistic, "row": claim.row,
                            "reference": claim.reference or "", "sign": claim.sign, "seeds": interval.seeds,
                            "estimate": interval.estimate, "low": interval.low, "high": interval.high,
                            "se": interval.se, "df": interval.df, "t": interval.t, "p": interval.p})  # fmt: skip
        pd.DataFrame(records).to_csv(out / "claims.csv", index=False)
        (out / "report.md").write_text("report")
        return out / "report.md"


def _looks(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "sequential.csv", keep_default_na=False, na_values=[""])


def test_a_large_effect_is_decided_before_the_cap(tmp_path):
    stub = Stub(mtl=0.10, joint=0.08)
    until_decided(DEMO, tmp_path, train=stub, log=lambda m: None)
    looks = _looks(tmp_path)
    last = looks[looks["look"] == looks["look"].max()]
    primary = last[last["role"] == "primary"]
    assert (primary["decision"] == "held").all() and last["seeds_planned"].iloc[0] < 24
    # seeds in batches of 3, interim looks without the audit, the last call with it on the seeds reached
    n = int(last["seeds_planned"].iloc[0])
    assert stub.calls == [(k, False) for k in range(3, n + 1, 3)] + [(n, True)]
    assert len(looks) == 3 * (n // 3)  # two primary claims and the control per look
    # a decided claim keeps its decision and look; its boundary was cleared by |t|
    first = primary.sort_values("decided_at").iloc[0]
    row = looks[(looks["look"] == first["decided_at"]) & (looks["row"] == first["row"])].iloc[0]
    assert abs(row["t"]) >= row["t_boundary"] and row["rci_low"] > 0
    text = (tmp_path / "sequential.md").read_text()
    assert "every primary claim decided" in text and "| **held** |" in text


def test_no_effect_runs_to_the_cap_and_stays_inconclusive(tmp_path):
    stub = Stub(mtl=0.0, joint=0.0)
    until_decided(DEMO, tmp_path, train=stub, log=lambda m: None)
    looks = _looks(tmp_path)
    assert sorted(set(looks["seeds_planned"])) == list(range(3, 25, 3)) and stub.calls[-1] == (24, True)
    final = looks[(looks["look"] == 8) & (looks["role"] == "primary")]
    assert (final["decision"] == "inconclusive").all()
    assert (looks[looks["look"] < 8].query("role == 'primary'")["decision"] == "continue").all()
    # the control (Swin's drop, +.25 per seed) is decided, at full alpha, and does not stop the loop
    assert (looks[looks["role"] == "control"]["decision"] == "held").any()
    assert "the cap of 24 seeds" in (tmp_path / "sequential.md").read_text()


def test_one_claim_decided_the_other_goes_on(tmp_path):
    until_decided(DEMO, tmp_path, train=Stub(mtl=0.12, joint=0.0), log=lambda m: None)
    looks = _looks(tmp_path)
    mtl = looks[looks["row"] == "mtl_cls_seg"]
    decided_at = int(mtl["decided_at"].dropna().iloc[0])
    after = mtl[mtl["look"] >= decided_at]
    assert (after["decision"] == "held").all() and (after["decided_at"] == decided_at).all() and len(after) > 1
    joint = looks[looks["row"] == "joint_swin"]
    # once MTL is rejected, Joint is tested at the full alpha (Holm passes MTL's share on)
    assert joint[joint["look"] > decided_at]["alpha_local"].eq(0.05).all()
    assert joint[joint["look"] < decided_at]["alpha_local"].eq(0.025).all()


def test_a_rerun_after_a_kill_continues_from_the_looks_recorded(tmp_path):
    reference = tmp_path / "reference"
    until_decided(DEMO, reference, train=Stub(0.0, 0.0), log=lambda m: None)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        until_decided(DEMO, out, train=Stub(0.0, 0.0, fail_at_call=3), log=lambda m: None)
    assert sorted(set(_looks(out)["look"])) == [1, 2]  # the looks before the kill survive
    stub = Stub(0.0, 0.0)
    until_decided(DEMO, out, train=stub, log=lambda m: None)
    assert stub.calls[0] == (9, False)  # the next look, not the first
    volatile = ["seconds", "hours_spent"]
    pd.testing.assert_frame_equal(_looks(out).drop(columns=volatile), _looks(reference).drop(columns=volatile))
    # a finished run reruns only the final call (reproduce then skips what is done)
    again = Stub(0.0, 0.0)
    until_decided(DEMO, out, train=again, log=lambda m: None)
    assert again.calls == [(24, True)]


def test_the_design_is_fixed_at_the_first_look(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        until_decided(DEMO, tmp_path, train=Stub(0.0, 0.0, fail_at_call=2), log=lambda m: None)
    other = Design("demo", DEMO.rows, max_seeds=12)
    with pytest.raises(ValueError, match=r"another design.*max_seeds"):
        until_decided(other, tmp_path, train=Stub(0.0, 0.0), log=lambda m: None)
    until_decided(DEMO, tmp_path, budget_hours=100.0, train=Stub(0.0, 0.0), log=lambda m: None)  # budget may change
    with pytest.raises(ValueError, match="batch-seeds"):
        Design("demo", DEMO.rows, max_seeds=24, batch_seeds=1)


def test_the_budget_stops_before_a_batch_that_would_overrun_it(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(sequential.time, "perf_counter", lambda: clock[0])
    stub = Stub(0.0, 0.0, clock=clock)  # each look takes 1200 s: 20 minutes per 3 seeds
    until_decided(DEMO, tmp_path, budget_hours=0.9, train=stub, log=lambda m: None)
    assert stub.calls == [(3, False), (6, False), (6, True)]  # 40 min spent, 20 more would pass 54 min
    assert "the budget of 0.9 h" in (tmp_path / "sequential.md").read_text()
    assert _looks(tmp_path)["hours_spent"].max() == pytest.approx(2 / 3)


def test_the_rows_of_the_family():
    assert family_rows("demo", None) == ("swin", "joint_swin", "mtl_cls_seg")
    assert family_rows("methods", None)[0] == "swin"
    assert family_rows("demo", ["swin", "mtl_cls_seg"]) == ("swin", "mtl_cls_seg")
    with pytest.raises(ValueError, match="no primary claim"):
        family_rows("demo", ["swin", "swin_unet"])
    with pytest.raises(ValueError, match="without an axis"):
        family_rows("shortcut-sweep", None)


def test_the_command_line_refuses_seeds_with_until_decided(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--until-decided", "--seeds", "0,1"]) == 1
    assert "drop --seeds" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_until_decided_end_to_end_at_micro_scale(tmp_path, tiny_data, capsys):
    from micro_runs import MICRO_RUN, set_args

    out = tmp_path / "seq"
    args = ["reproduce", "--preset", "demo", "--manifest", str(tiny_data.manifest), "--rows", "swin,mtl_cls_seg",
            "--out", str(out), "--until-decided", "--max-seeds", "4", "--batch-seeds", "2", "--jobs", "2"]  # fmt: skip
    assert main([*args, *set_args(["train.epochs=1", *MICRO_RUN])]) == 0
    looks = _looks(out)
    assert sorted(set(looks["seeds_planned"])) == [2, 4]
    assert set(looks["role"]) == {"primary", "control"} and set(looks.query("role == 'primary'")["row"]) == {
        "mtl_cls_seg"
    }  # the family: the primary claims whose rows were trained
    assert set(looks[looks["look"] == 2]["decision"]) <= {"held", "did not hold", "inconclusive"}
    report = (out / "report.md").read_text()
    assert "## Seeds added until decided" in report and "## What deciding would take" in report
    assert 'This run answers **"this data set"**' in report  # one manifest: a shared draw
    assert (out / "audit" / "audit.csv").is_file()  # the last call audits
    assert sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()) == sorted(  # beside them: their locks
        f"{row}-seed{k}" for row in ("swin", "mtl_cls_seg") for k in range(4)
    )
    # a rerun finds every look recorded and every stage done
    capsys.readouterr()
    assert main([*args, *set_args(["train.epochs=1", *MICRO_RUN])]) == 0
    assert ": running" not in capsys.readouterr().out
