import pytest

from mtlswin.data.phantom.hospitals import PRESETS, PROFILES, hospital_counts


def test_paper_preset_reproduces_the_papers_proportions():
    counts = hospital_counts("paper")
    assert sum(counts) == 11780
    assert sum(counts[:4]) == 9912 and sum(counts[4:]) == 1868
    assert counts[0] // 10 == 179  # test A = 10% of hospital 1


def test_demo_preset_leaves_room_for_both_test_sets():
    counts = hospital_counts("demo")
    assert 1200 <= sum(counts) <= 1600
    assert counts[0] // 10 >= 40 and sum(counts[4:]) >= 200


@pytest.mark.parametrize("n", [11, 97, 1000, 5000])
def test_rescaled_counts_sum_exactly_and_keep_shares(n):
    counts = hospital_counts("paper", n)
    assert sum(counts) == n and min(counts) >= 1
    share = PRESETS["paper"][0] / sum(PRESETS["paper"])
    assert abs(counts[0] - share * n) <= 1


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown preset"):
        hospital_counts("huge")
    with pytest.raises(ValueError, match="too small"):
        hospital_counts("demo", 5)


def test_profiles_keep_calibration_offsets_small():
    assert sorted(PROFILES) == list(range(1, 12))
    assert all(abs(p.hu_offset) <= 2.0 for p in PROFILES.values())
