"""Coverage of the claims' intervals, by simulation, with no training.

Each simulated experiment has a known true difference between two methods in a per-slice statistic (the
cue sensitivity |p - p_twin|), seed-level noise with an occasional collapsed run (a run that did not learn
has a cue sensitivity near zero, as the demo's collapsed MTL run did), and patients that hold several
correlated slices. The true difference is the method's expectation over training seeds and test patients,
collapses included: 0.9 * (mu_row - mu_ref) when each run collapses with probability 0.1.

The seed-aware interval of :func:`mtlswin.stats.seed_interval` must cover it in at least 90% of 200
experiments; the patient-only interval (which holds the three trained models fixed) is reported beside it.
A third case has the patient term dominate (a shared test set whose patients move the two rows differently,
seeds that agree): its Welch-Satterthwaite degrees of freedom make the interval narrower than t(K-1) would,
and it must still cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from mtlswin.pipeline.claims import Claim, Evidence, SeedEvidence, evaluate_claims

MU = {"ref": 0.40, "row": 0.33}  # mean cue sensitivity of each method when its run learns
SLICE_SD, COLLAPSED = 0.03, 0.02  # per-slice noise; the cue sensitivity of a run that did not learn
CLAIM = Claim("row is less cue-sensitive than ref", "cue_b", "row", "ref", -1)
EXPERIMENTS, SEEDS, PATIENTS, SLICES_PER_PATIENT, RESAMPLES = 200, 3, 30, 5, 200


@dataclass(frozen=True)
class Scenario:
    draw_per_seed: bool
    seed_sd: float = 0.04  # the demo: seed noise dwarfs the patient interval
    patient_sd: float = 0.05  # per patient, shared by both rows (it cancels in the difference)
    row_patient_sd: float = 0.0  # per patient and row (it does not cancel)
    collapse_p: float = 0.1  # share of runs that do not learn

    @property
    def truth(self) -> float:
        return (1 - self.collapse_p) * (MU["row"] - MU["ref"])


SCENARIOS = {
    "one-draw-per-seed": Scenario(True),
    "shared-test-set": Scenario(False),
    "patients-dominate": Scenario(False, seed_sd=0.003, row_patient_sd=0.06, collapse_p=0.0),
}


def _test_set(rng: np.random.Generator, offset: int, sc: Scenario) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    n = PATIENTS * SLICES_PER_PATIENT
    patients = np.repeat(np.arange(PATIENTS) + offset, SLICES_PER_PATIENT)
    frame = pd.DataFrame({"index": np.arange(n) + offset * 100, "patient_id": [f"p{p}" for p in patients],
                          "label": rng.integers(0, 2, n), "cue": rng.integers(0, 2, n)})  # fmt: skip
    shared = rng.normal(0, sc.patient_sd, PATIENTS)
    effect = {row: np.repeat(shared + rng.normal(0, sc.row_patient_sd, PATIENTS), SLICES_PER_PATIENT) for row in MU}
    return frame, effect


def _seed(rng: np.random.Generator, frame: pd.DataFrame, effect: dict[str, np.ndarray], sc: Scenario) -> SeedEvidence:
    ev = SeedEvidence(base={"test_a": frame, "test_b": frame})
    for row, mu in MU.items():
        if rng.random() < sc.collapse_p:
            cue = COLLAPSED + rng.normal(0, 0.005, len(frame))
        else:
            cue = mu + rng.normal(0, sc.seed_sd) + effect[row] + rng.normal(0, SLICE_SD, len(frame))
        prob = np.full(len(frame), 0.3) + 0.4 * frame["label"].to_numpy()
        ev.prob[row] = {"test_a": prob, "test_b": prob}
        ev.twin[row] = {"test_a": prob, "test_b": prob + cue}
    return ev


def _experiment(rng: np.random.Generator, sc: Scenario) -> Evidence:
    shared = _test_set(rng, 0, sc)
    seeds = {}
    for k in range(SEEDS):
        frame, effect = _test_set(rng, 1000 * (k + 1), sc) if sc.draw_per_seed else shared
        seeds[k] = _seed(rng, frame, effect, sc)
    return Evidence(seeds=seeds)


def _coverage(sc: Scenario) -> tuple[float, float, float, float]:
    """Coverage of the seed-aware interval, of the patient-only one, of the seed-aware one with t(K-1) instead of
    the Welch-Satterthwaite df, and the mean ratio of the interval's half-width to t(K-1)'s."""
    rng = np.random.default_rng(20261130)
    seed_aware = patient_only = old_t = 0
    ratios = []
    t_old = student_t.ppf(0.975, SEEDS - 1)
    for e in range(EXPERIMENTS):
        r = evaluate_claims(_experiment(rng, sc), (CLAIM,), n_resamples=RESAMPLES, seed=e).iloc[0]
        seed_aware += r["low"] <= sc.truth <= r["high"]
        patient_only += r["patient_low"] <= sc.truth <= r["patient_high"]
        old_t += abs(r["estimate"] - sc.truth) <= t_old * r["se"]
        ratios.append(r["half_width"] / (t_old * r["se"]))
    return seed_aware / EXPERIMENTS, patient_only / EXPERIMENTS, old_t / EXPERIMENTS, float(np.mean(ratios))


@pytest.mark.parametrize("name", ["one-draw-per-seed", "shared-test-set"])
def test_seed_aware_interval_covers_the_true_difference(name):
    seed_aware, patient_only, _, ratio = _coverage(SCENARIOS[name])
    print(f"\ncoverage of the true difference {SCENARIOS[name].truth:+.3f} over {EXPERIMENTS} experiments "
          f"({name}): seed-aware {seed_aware:.1%}, patient-only {patient_only:.1%}; half-width / t(K-1)'s "
          f"{ratio:.2f}")  # fmt: skip
    assert seed_aware >= 0.90
    # the simulation has the seed noise the claims must cover: an interval blind to it misses the truth often
    assert patient_only < 0.80
    assert ratio > 0.9  # the seeds dominate: Welch-Satterthwaite keeps (about) t(K-1)


def test_an_interval_dominated_by_patients_is_narrower_than_t_k_minus_1_and_still_covers():
    seed_aware, _, old_t, ratio = _coverage(SCENARIOS["patients-dominate"])
    print(f"\npatients dominate, {EXPERIMENTS} experiments: coverage {seed_aware:.1%} (Welch-Satterthwaite df), "
          f"{old_t:.1%} with t(K-1); half-width / t(K-1)'s {ratio:.2f}")  # fmt: skip
    assert seed_aware >= 0.90
    assert ratio < 0.6  # t(df ~ 29) against t(2) = 4.30
    assert old_t > seed_aware  # t(K-1) over-covered: the width it added bought nothing that was needed
