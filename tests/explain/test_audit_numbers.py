"""The audit's numbers on hand-made maps equal hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlswin.explain.audit import group_name, mean_ci, slice_scores, summarise, summary_markdown


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """Four 4x4 maps and masks with answers worked out by hand in the test below."""
    cams = np.zeros((4, 4, 4))
    masks = np.zeros((4, 4, 4), dtype=bool)
    # 0: energy 4 + 2 inside the top-left 2x2 mask out of 4 + 2 + 2 = 8 -> 0.75; max at (0, 0) inside.
    cams[0, 0, 0], cams[0, 1, 1], cams[0, 2, 3] = 4.0, 2.0, 2.0
    masks[0, :2, :2] = True
    # 1: uniform map, mask bottom-right 2x2 -> energy 4/16; first maximum (0, 0) is outside -> miss.
    cams[1] = 1.0
    masks[1, 2:, 2:] = True
    # 2: a single peak at (3, 3) inside a one-column mask (4 pixels) -> energy 1, hit.
    cams[2, 3, 3] = 0.5
    masks[2, :, 3] = True
    # 3: all-zero map (no energy, no maximum) -> NaN for both.
    masks[3, 0, 0] = True
    return cams, masks


def test_slice_scores_equal_hand_computed_values() -> None:
    scores = slice_scores(*hand_made())
    np.testing.assert_allclose(scores["energy_in_mask"], [0.75, 0.25, 1.0, np.nan])
    np.testing.assert_array_equal(scores["pointing_hit"], [1.0, 0.0, 1.0, np.nan])
    np.testing.assert_allclose(scores["mask_area"], [0.25, 0.25, 0.25, 1 / 16])


def test_uniform_map_scores_the_mask_area_chance_level() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((5, 8, 8)) < 0.3
    masks[:, 0, 0] = True
    scores = slice_scores(np.ones((5, 8, 8)), masks)
    np.testing.assert_allclose(scores["energy_in_mask"], scores["mask_area"])


def test_mean_ci_known_answers() -> None:
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5%
    # percentiles are 0 and 1.
    assert mean_ci(np.array([0.0, 1.0])) == (0.5, 0.0, 1.0)
    assert mean_ci(np.array([0.3, 0.3, 0.3])) == (0.3, 0.3, 0.3)
    mean, low, high = mean_ci(np.array([0.7, np.nan]))
    assert mean == 0.7 and np.isnan(low) and np.isnan(high)
    values = np.random.default_rng(1).random(40)
    first, again = mean_ci(values, seed=3), mean_ci(values, seed=3)
    assert first == again  # fixed seed: the same interval every time
    assert first[1] < values.mean() < first[2]
    assert first[0] == pytest.approx(values.mean())


def test_summarise_groups_by_model_and_label_cue() -> None:
    energy, hit, area = [0.75, 0.25, 1.0, np.nan], [1.0, 0.0, 1.0, np.nan], [0.25, 0.25, 0.25, 1 / 16]
    scores = pd.DataFrame(
        {
            "model": ["a"] * 4 + ["b"] * 2,
            "label": [1, 1, 0, 0, 1, 1],
            "cue": [1, 1, 0, 1, -1, -1],
            "energy_in_mask": [*energy, 0.5, 0.5],
            "pointing_hit": [*hit, 0.0, 0.0],
            "mask_area": [*area, 0.1, 0.1],
            "map": "4x4",
        }
    )
    summary = summarise(scores, n_resamples=500).set_index(["model", "group"])
    all_a = summary.loc[("a", "all")]
    assert all_a["n"] == 4 and all_a["n_empty_maps"] == 1
    assert all_a["energy_in_mask"] == pytest.approx((0.75 + 0.25 + 1.0) / 3)  # the NaN map is left out
    assert all_a["pointing_hit"] == pytest.approx(2 / 3)
    assert all_a["mask_area"] == pytest.approx((0.75 + 1 / 16) / 4)
    assert summary.loc[("a", "label=1, cue=1"), "energy_in_mask"] == pytest.approx(0.5)
    assert summary.loc[("a", "label=1, cue=1"), "n"] == 2
    assert summary.loc[("a", "label=0, cue=0"), "pointing_hit"] == 1.0
    assert np.isnan(summary.loc[("a", "label=0, cue=1"), "pointing_hit"])  # its only map is empty
    assert summary.loc[("b", "all"), "energy_in_mask_lo"] == 0.5  # constant values: a zero-width CI
    assert ("b", "label=1") not in summary.index  # one group only: no duplicate of "all"
    table = summary_markdown(summary.reset_index(), "test_a")
    # 4x4 map: the median mask (a quarter of the image) covers 4 cells
    assert all_a["median_mask_cells"] == pytest.approx(4.0)
    # columns: model, method, sanity (none given here), group, n, map, cells, empty maps, mask x chance, ...
    assert all_a["mask_x_chance"] == pytest.approx((3.0 + 1.0 + 4.0) / 3)
    assert "| a |  |  | all | 4 | 4x4 | 4.0 | 1 | 2.667 [" in table and "| 0.667 [" in table


def test_group_names() -> None:
    assert group_name(1, 0) == "label=1, cue=0"
    assert group_name(0, -1) == "label=0"


@pytest.mark.parametrize(
    ("cams", "masks", "match"),
    [
        (np.ones((2, 4, 4)), np.ones((2, 4, 5), bool), "both be"),
        (-np.ones((1, 4, 4)), np.ones((1, 4, 4), bool), "negative"),
        (np.ones((2, 4, 4)), np.stack([np.ones((4, 4), bool), np.zeros((4, 4), bool)]), r"slices \[1\]"),
    ],
)
def test_bad_inputs_are_rejected(cams: np.ndarray, masks: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        slice_scores(cams, masks)


def test_mean_ci_resamples_patients_when_given() -> None:
    # Two patients of 20 identical slices each: by patient there are 2 units, so resampled means are
    # 0, 0.5 or 1; by slice (40 units) the interval is far narrower around 0.5.
    values = np.array([0.0] * 20 + [1.0] * 20)
    patients = np.array(["a"] * 20 + ["b"] * 20)
    _, low, high = mean_ci(values, patients, n_resamples=500)
    assert (low, high) == (0.0, 1.0)
    _, low_s, high_s = mean_ci(values, None, n_resamples=500)
    assert 0.3 < low_s < 0.5 < high_s < 0.7
