"""Paired claims: known verdicts on made-up predictions, and patients (not slices) as the resampling unit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlswin.pipeline.claims import Claim, Evidence, evaluate_claims, load_evidence, verdict


def _base(n_patients: int, per: int, rng) -> pd.DataFrame:
    patients = np.repeat([f"p{i:03d}" for i in range(n_patients)], per)
    label = np.repeat(rng.random(n_patients) < 0.3, per).astype(int)  # label per patient: clustered data
    cue = rng.integers(0, 2, len(label))
    return pd.DataFrame({"index": np.arange(len(label)), "patient_id": patients, "label": label, "cue": cue})


def _evidence(gap: float, seeds: int = 3, n_patients: int = 60, per: int = 5) -> Evidence:
    """``good`` separates the classes on test B by ``gap`` more than ``swin``; both equal on test A."""
    rng = np.random.default_rng(0)
    base = {"test_a": _base(n_patients, per, rng), "test_b": _base(n_patients, per, rng)}
    base["test_b"]["index"] += 10_000
    ev = Evidence(base=base)
    for row, shift in (("swin", 0.0), ("good", gap)):
        ev.prob[row], ev.twin[row] = {}, {}
        for split, frame in base.items():
            y = frame["label"].to_numpy()
            sep = 1.0 + (shift if split == "test_b" else 0.0)
            noise = rng.normal(0, 1, (seeds, len(y)))
            ev.prob[row][split] = 1 / (1 + np.exp(-(sep * (2 * y - 1) + noise)))
            ev.twin[row][split] = ev.prob[row][split] + (0.3 if row == "swin" else 0.05)
        ev.threshold[row] = 0.5
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


def test_load_evidence_aligns_runs_by_slice_index(tmp_path):
    for row, seed, p in (("swin", 0, 0.2), ("swin", 1, 0.4), ("mtl_cls_seg", 0, 0.9)):
        run = tmp_path / f"{row}-seed{seed}"
        (run / "predictions").mkdir(parents=True)
        for split in ("test_a", "test_b"):
            frame = pd.DataFrame({"index": [3, 1, 2], "patient_id": ["a", "b", "b"], "label": [1, 0, 1],
                                  "prob": [p, p + 0.01, p + 0.02], "cue": [0, 1, 0]})  # fmt: skip
            frame.to_csv(run / "predictions" / f"{split}.csv", index=False)
        (run / "metrics.json").write_text('{"test_b": {"threshold": 0.5}}')
    ev = load_evidence(sorted(tmp_path.iterdir()))
    assert list(ev.base["test_a"]["index"]) == [1, 2, 3]
    np.testing.assert_allclose(ev.prob["swin"]["test_a"], [[0.21, 0.22, 0.2], [0.41, 0.42, 0.4]])
    assert ev.prob["mtl_cls_seg"]["test_b"].shape == (1, 3)
