"""Coverage of the claims' intervals, by simulation, with no training.

Each simulated experiment has a known true difference between two methods in a per-slice statistic (the
cue sensitivity |p - p_twin|), seed-level noise with an occasional collapsed run (a run that did not learn
has a cue sensitivity near zero, as the demo's collapsed MTL run did), and patients that hold several
correlated slices. The true difference is the method's expectation over training seeds and test patients,
collapses included: 0.9 * (mu_row - mu_ref) when each run collapses with probability 0.1.

The seed-aware interval of :func:`mtlswin.stats.seed_interval` must cover it in at least 90% of 200
experiments; the patient-only interval (which holds the three trained models fixed) is reported beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlswin.pipeline.claims import Claim, Evidence, SeedEvidence, evaluate_claims

MU = {"ref": 0.40, "row": 0.33}  # mean cue sensitivity of each method when its run learns
SEED_SD, PATIENT_SD, SLICE_SD = 0.04, 0.05, 0.03  # the demo: seed noise dwarfs the patient interval
COLLAPSE_P, COLLAPSED = 0.1, 0.02  # share of runs that do not learn, and their cue sensitivity
TRUTH = (1 - COLLAPSE_P) * (MU["row"] - MU["ref"])
CLAIM = Claim("row is less cue-sensitive than ref", "cue_b", "row", "ref", -1)
EXPERIMENTS, SEEDS, PATIENTS, SLICES_PER_PATIENT, RESAMPLES = 200, 3, 30, 5, 200


def _test_set(rng: np.random.Generator, offset: int) -> tuple[pd.DataFrame, np.ndarray]:
    n = PATIENTS * SLICES_PER_PATIENT
    patients = np.repeat(np.arange(PATIENTS) + offset, SLICES_PER_PATIENT)
    frame = pd.DataFrame({"index": np.arange(n) + offset * 100, "patient_id": [f"p{p}" for p in patients],
                          "label": rng.integers(0, 2, n), "cue": rng.integers(0, 2, n)})  # fmt: skip
    patient_effect = np.repeat(rng.normal(0, PATIENT_SD, PATIENTS), SLICES_PER_PATIENT)  # shared by both rows
    return frame, patient_effect


def _seed(rng: np.random.Generator, frame: pd.DataFrame, patient_effect: np.ndarray) -> SeedEvidence:
    ev = SeedEvidence(base={"test_a": frame, "test_b": frame})
    for row, mu in MU.items():
        if rng.random() < COLLAPSE_P:
            cue = COLLAPSED + rng.normal(0, 0.005, len(frame))
        else:
            cue = mu + rng.normal(0, SEED_SD) + patient_effect + rng.normal(0, SLICE_SD, len(frame))
        prob = np.full(len(frame), 0.3) + 0.4 * frame["label"].to_numpy()
        ev.prob[row] = {"test_a": prob, "test_b": prob}
        ev.twin[row] = {"test_a": prob, "test_b": prob + cue}
    return ev


def _experiment(rng: np.random.Generator, draw_per_seed: bool) -> Evidence:
    shared = _test_set(rng, 0)
    seeds = {}
    for k in range(SEEDS):
        frame, patient_effect = _test_set(rng, 1000 * (k + 1)) if draw_per_seed else shared
        seeds[k] = _seed(rng, frame, patient_effect)
    return Evidence(seeds=seeds)


def _coverage(draw_per_seed: bool) -> tuple[float, float]:
    rng = np.random.default_rng(20261130)
    seed_aware = patient_only = 0
    for e in range(EXPERIMENTS):
        r = evaluate_claims(_experiment(rng, draw_per_seed), (CLAIM,), n_resamples=RESAMPLES, seed=e).iloc[0]
        seed_aware += r["low"] <= TRUTH <= r["high"]
        patient_only += r["patient_low"] <= TRUTH <= r["patient_high"]
    return seed_aware / EXPERIMENTS, patient_only / EXPERIMENTS


@pytest.mark.parametrize("draw_per_seed", [True, False], ids=["one-draw-per-seed", "shared-test-set"])
def test_seed_aware_interval_covers_the_true_difference(draw_per_seed):
    seed_aware, patient_only = _coverage(draw_per_seed)
    print(f"\ncoverage of the true difference {TRUTH:+.3f} over {EXPERIMENTS} experiments "
          f"({'one draw per seed' if draw_per_seed else 'shared test set'}): seed-aware {seed_aware:.1%}, "
          f"patient-only {patient_only:.1%}")  # fmt: skip
    assert seed_aware >= 0.90
    # the simulation has the seed noise the claims must cover: an interval blind to it misses the truth often
    assert patient_only < 0.80
