"""Paired claims: known verdicts on made-up predictions, per-seed values, flags of runs that did not learn,
power against the paper, and runs grouped by seed (one test set per seed, or one shared)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlswin.pipeline.claims import (
    CLAIMS,
    Claim,
    Evidence,
    SeedEvidence,
    evaluate_claims,
    load_evidence,
    verdict,
)
from mtlswin.pipeline.claims_table import claims_markdown


def _base(n_patients: int, per: int, rng) -> pd.DataFrame:
    patients = np.repeat([f"p{i:03d}" for i in range(n_patients)], per)
    label = np.repeat(rng.random(n_patients) < 0.3, per).astype(int)  # label per patient: clustered data
    cue = rng.integers(0, 2, len(label))
    return pd.DataFrame({"index": np.arange(len(label)), "patient_id": patients, "label": label, "cue": cue})


def _evidence(gap: float, seeds: int = 3, n_patients: int = 60, per: int = 5, seed_gaps=None) -> Evidence:
    """``good`` separates the classes on test B by ``gap`` (or ``seed_gaps[k]``) more than ``swin``; both
    equal on test A. Every seed has a test set of its own, as with one phantom draw per seed."""
    rng = np.random.default_rng(0)
    ev = Evidence()
    for k in range(seeds):
        base = {"test_a": _base(n_patients, per, rng), "test_b": _base(n_patients, per, rng)}
        base["test_b"]["index"] += 10_000
        seed_ev = ev.seeds[k] = SeedEvidence(base=base)
        for row, shift in (("swin", 0.0), ("good", gap if seed_gaps is None else seed_gaps[k])):
            seed_ev.prob[row], seed_ev.twin[row] = {}, {}
            for split, frame in base.items():
                y = frame["label"].to_numpy()
                sep = 1.0 + (shift if split == "test_b" else 0.0)
                noise = rng.normal(0, 1, len(y))
                seed_ev.prob[row][split] = 1 / (1 + np.exp(-(sep * (2 * y - 1) + noise)))
                seed_ev.twin[row][split] = seed_ev.prob[row][split] + (0.3 if row == "swin" else 0.05)
            seed_ev.threshold[row] = 0.5
    return ev


CLAIM_B = Claim("good beats swin on test B", "auc_b", "good")
CLAIM_CUE = Claim("good is less cue-sensitive", "cue_b", "good", "swin", -1)


def test_a_large_effect_holds_and_the_interval_brackets_the_estimate():
    table = evaluate_claims(_evidence(gap=3.0), (CLAIM_B, CLAIM_CUE), n_resamples=300)
    b = table.set_index("statistic").loc["auc_b"]
    assert b["verdict"] == "held" and b["low"] > 0 and b["low"] <= b["estimate"] <= b["high"]
    cue = table.set_index("statistic").loc["cue_b"]
    assert cue["estimate"] == pytest.approx(-0.25) and cue["verdict"] == "held"


def test_no_effect_is_inconclusive_and_a_reversed_one_did_not_hold():
    assert evaluate_claims(_evidence(gap=0.0), (CLAIM_B,), n_resamples=300)["verdict"][0] == "inconclusive"
    assert evaluate_claims(_evidence(gap=-0.9), (CLAIM_B,), n_resamples=300)["verdict"][0] == "did not hold"


def test_claims_of_missing_rows_are_left_out():
    table = evaluate_claims(_evidence(gap=1.0), (Claim("x", "auc_b", "mtl_cls_seg"),), n_resamples=50)
    assert table.empty


def test_verdict_rule():
    assert verdict(0.01, 0.2, 1) == "held" and verdict(-0.2, -0.01, -1) == "held"
    assert verdict(-0.2, -0.01, 1) == "did not hold" and verdict(-0.1, 0.1, 1) == "inconclusive"
    assert verdict(float("nan"), 0.1, 1).startswith("inconclusive")
    assert verdict(0.01, 0.2, 1, seeds=1).startswith("inconclusive (one seed")


def test_seeds_that_disagree_widen_the_interval_beyond_the_patient_only_one():
    # `good` is far MORE cue-sensitive than swin with seed 0, less with seeds 1 and 2 (as the demo's MTL runs)
    ev = _evidence(gap=0.0)
    rng = np.random.default_rng(1)
    for k, offset in zip(range(3), (0.6, 0.05, 0.05)):
        prob = ev.seeds[k].prob["good"]["test_b"]
        ev.seeds[k].twin["good"]["test_b"] = prob + offset + rng.normal(0, 0.02, len(prob))
    r = evaluate_claims(ev, (CLAIM_CUE,), n_resamples=300).iloc[0]
    per_seed = [r["seed0"], r["seed1"], r["seed2"]]
    assert r["seed0"] == pytest.approx(0.3, abs=0.01) and r["seed1"] == pytest.approx(-0.25, abs=0.01)
    assert r["estimate"] == pytest.approx(np.mean(per_seed))
    assert (r["high"] - r["low"]) > 10 * (r["patient_high"] - r["patient_low"])
    assert r["patient_high"] < 0 and r["verdict"] == "inconclusive"  # the patients alone would have said "held"
    assert r["seeds"] == 3 and r["mde"] > r["half_width"]


def test_a_single_seed_gives_no_verdict_but_keeps_the_patient_interval():
    r = evaluate_claims(_evidence(gap=3.0, seeds=1), (CLAIM_B,), n_resamples=200).iloc[0]
    assert r["verdict"].startswith("inconclusive (one seed") and np.isnan(r["low"])
    assert r["patient_low"] > 0


def test_power_is_stated_against_the_papers_difference():
    ev = _evidence(gap=0.3)
    for seed_ev in ev.seeds.values():  # name the rows as the paper's
        seed_ev.prob["mtl_cls_seg"] = seed_ev.prob.pop("good")
        seed_ev.twin["mtl_cls_seg"] = seed_ev.twin.pop("good")
        seed_ev.threshold["mtl_cls_seg"] = 0.5
    claim = next(c for c in CLAIMS if c.statistic == "auc_b" and c.row == "mtl_cls_seg")
    r = evaluate_claims(ev, (claim,), n_resamples=200).iloc[0]
    assert r["paper"] == pytest.approx(0.788 - 0.772)  # Table 1, test B
    assert r["paper_detectable"] == (abs(r["paper"]) >= r["mde"])
    text = claims_markdown(pd.DataFrame([r]), 200)
    assert "paper +.016" in text and ("could not have seen it" in text) == (not r["paper_detectable"])


def test_runs_that_did_not_learn_are_flagged_and_kept():
    ev = _evidence(gap=1.0)
    ev.not_learned["good-seed1"] = "val AUC 0.550"
    r = evaluate_claims(ev, (CLAIM_B,), n_resamples=100).iloc[0]
    assert r["not_learned"] == "good-seed1" and r["n_not_learned"] == 1 and r["seeds"] == 3
    text = claims_markdown(pd.DataFrame([r]), 100)
    assert "1: " in text and " †" in text and "did not learn, among the claims' rows: 1 (good-seed1)" in text


def _fake_run(root, row, seed, p, index=(3, 1, 2), pred=None):
    run = root / f"{row}-seed{seed}"
    (run / "predictions").mkdir(parents=True)
    for split in ("test_a", "test_b"):
        frame = pd.DataFrame({"index": list(index), "patient_id": ["a", "b", "b"], "label": [1, 0, 1],
                              "prob": [p, p + 0.01, p + 0.02], "cue": [0, 1, 0],
                              "pred": pred if pred is not None else [1, 0, 1]})  # fmt: skip
        frame.to_csv(run / "predictions" / f"{split}.csv", index=False)
    (run / "metrics.json").write_text('{"test_b": {"threshold": 0.5}}')
    return run


def test_load_evidence_groups_runs_by_seed_and_aligns_by_slice_index(tmp_path):
    _fake_run(tmp_path, "swin", 0, 0.2)
    _fake_run(tmp_path, "swin", 1, 0.4, index=(7, 5, 6))  # seed 1: a test set of its own (its own draw)
    _fake_run(tmp_path, "mtl_cls_seg", 0, 0.9, pred=[0, 0, 0])  # one class for every slice: did not learn
    ev = load_evidence(sorted(tmp_path.iterdir()))
    assert sorted(ev.seeds) == [0, 1]
    assert list(ev.seeds[0].base["test_a"]["index"]) == [1, 2, 3]
    assert list(ev.seeds[1].base["test_a"]["index"]) == [5, 6, 7]
    np.testing.assert_allclose(ev.seeds[0].prob["swin"]["test_a"], [0.21, 0.22, 0.2])
    np.testing.assert_allclose(ev.seeds[1].prob["swin"]["test_b"], [0.41, 0.42, 0.4])
    assert "mtl_cls_seg" not in ev.seeds[1].prob
    assert ev.seeds[0].fingerprint() != ev.seeds[1].fingerprint()
    assert ev.not_learned == {
        "mtl_cls_seg-seed0": "test_a: 100.0% predicted negative; test_b: 100.0% predicted negative"
    }


def test_seeds_sharing_a_test_set_share_each_patient_resample():
    ev = _evidence(gap=1.0)
    ev.seeds[1] = SeedEvidence(base=ev.seeds[0].base, prob=ev.seeds[1].prob, twin=ev.seeds[1].twin,
                               threshold=ev.seeds[1].threshold)  # fmt: skip
    from mtlswin.pipeline.claims import _Scores

    scores = _Scores(ev, 20, 0)
    assert scores.draws[0] is scores.draws[1] and scores.draws[2] is not scores.draws[0]


def test_presets_name_their_primary_claims_and_the_control():
    from mtlswin.pipeline.presets import METHODS, get_preset

    demo = get_preset("demo").claims
    primary = {(c.row, c.reference, c.statistic) for c in demo if c.role == "primary"}
    assert primary == {("mtl_cls_seg", "swin", "auc_b"), ("joint_swin", "swin", "auc_b")}
    assert [(c.row, c.reference, c.statistic) for c in demo if c.role == "control"] == [("swin", None, "drop")]
    methods = get_preset("methods").claims
    assert {(c.row, c.reference) for c in methods if c.role == "primary"} == {(m, "swin") for m in METHODS}
    assert {c.statistic for c in methods if c.role == "primary"} == {"auc_trap"}
    with pytest.raises(ValueError, match="role"):
        Claim("x", "auc_b", "good", role="main")


def test_holm_adjusts_the_primary_claims_only():
    from mtlswin.pipeline.claim_families import SECONDARY, adjusted_verdicts

    table = pd.DataFrame({
        "claim": list("abcd"), "role": ["primary", "primary", "control", "secondary"], "sign": [1, 1, 1, -1],
        "seeds": 3, "estimate": [0.05, -0.04, 0.3, -0.2], "p": [0.03, 0.02, 0.04, 0.001],
        "verdict": ["held", "did not hold", "held", "held"],
    })  # fmt: skip
    out = adjusted_verdicts(table).set_index("claim")
    # Holm over the two primary p-values .02, .03: adjusted .04 and .04, both rejected
    assert out.loc["a", "p_holm"] == pytest.approx(0.04) and out.loc["b", "p_holm"] == pytest.approx(0.04)
    assert out.loc["a", "verdict_adjusted"] == "held" and out.loc["b", "verdict_adjusted"] == "did not hold"
    assert out.loc["c", "verdict_adjusted"] == "held" and np.isnan(out.loc["c", "p_holm"])  # control: full alpha
    assert out.loc["d", "verdict_adjusted"] == SECONDARY
    # p .03 and .04: Holm adjusts both to max(2 * .03, .04) = .06 > .05, so neither holds after adjustment
    table.loc[1, "p"] = 0.04
    assert set(adjusted_verdicts(table).iloc[:2]["verdict_adjusted"]) == {"inconclusive"}
    text = claims_markdown(adjusted_verdicts(table).assign(
        statistic="auc_b", row="good", reference="swin", expected="> 0", low=0.01, high=0.1, patient_low=0.0,
        patient_high=0.1, mde=0.1, paper=np.nan, not_learned=""), 100)  # fmt: skip
    assert "| a | primary |" in text and "**inconclusive** (Holm p 0.060)" in text
    assert "held (control, full alpha)" in text and "| secondary |" in text


def test_the_claims_table_records_the_welch_satterthwaite_df_and_the_test_sets():
    table = evaluate_claims(_evidence(gap=1.0), (CLAIM_B,), n_resamples=200)
    r = table.iloc[0]
    assert r["test_sets"] == 3 and r["patient_df"] == 3 * (60 - 1)  # a test set per seed, 60 patients each
    assert 2 <= r["df"] <= 2 + 177 and r["t"] == pytest.approx(r["estimate"] / r["se"])
    assert r["role"] == "secondary" and r["patient_var"] == pytest.approx(r["se"] ** 2 - np.var(
        [r["seed0"], r["seed1"], r["seed2"]], ddof=1) / 3)  # fmt: skip
