"""The paper's split protocol, the patient-grouped one, and the split-file checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlswin.data.splits import check_splits, make_splits, read_splits, split_table, write_splits


def _table(n_per_hospital=(400, 300, 300, 300, 60, 60, 60, 60, 60, 60, 60), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for h, n in enumerate(n_per_hospital, start=1):
        for j in range(n):
            rows.append({"hospital": h, "patient_id": f"h{h}_p{j // 10}", "hypodensity": int(rng.random() < 0.15)})
    return pd.DataFrame(rows)


def _by(splits, table, name):
    return table.loc[splits.loc[splits.split == name, "index"]]


def test_paper_protocol():
    table = _table()
    s = make_splits(table, "hypodensity", "paper", seed=1)
    a, tr, va, b = (_by(s, table, n) for n in ("test_a", "train", "val", "test_b"))
    assert len(a) == 40 and set(a.hospital) == {1}
    assert set(tr.hospital) | set(va.hospital) == {1, 2, 3, 4}
    assert len(tr) + len(va) == 1300 - 40 and len(va) == round(0.2 * 1260)
    assert len(b) == len(a) and set(b.hospital) <= set(range(5, 12))
    assert b.hypodensity.sum() == round(a.hypodensity.mean() * len(b))
    assert s["index"].is_unique and s["index"].is_monotonic_increasing
    # slices of one patient may be in train and test A (not a covariate-shift split) but test B shares none
    check_splits(table, s)
    assert s.equals(make_splits(table, "hypodensity", "paper", seed=1))
    assert not s.equals(make_splits(table, "hypodensity", "paper", seed=2))


def test_paper_protocol_is_configurable():
    table = _table()
    s = make_splits(
        table, "hypodensity", test_a_hospital=2, test_a_size=30, trainval_hospitals=(1, 2),
        val_fraction=0.5, test_b_hospitals=(6, 7), test_b_size=50, seed=0,
    )  # fmt: skip
    a, b = _by(s, table, "test_a"), _by(s, table, "test_b")
    assert len(a) == 30 and set(a.hospital) == {2}
    assert len(b) == 50 and set(b.hospital) <= {6, 7}
    assert b.hypodensity.sum() == round(a.hypodensity.mean() * 50)
    assert abs(len(_by(s, table, "val")) - len(_by(s, table, "train"))) <= 1


def test_patient_protocol_keeps_patients_together():
    table = _table()
    s = make_splits(table, "hypodensity", "patient", seed=0)
    patients = {n: set(_by(s, table, n).patient_id) for n in ("train", "val", "test_a", "test_b")}
    names = list(patients)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            assert not patients[x] & patients[y], (x, y)
    a = _by(s, table, "test_a")
    assert set(a.hospital) == {1} and len(a) >= 40 and len(a) % 10 == 0  # whole patients of 10 slices
    assert 0.1 < len(_by(s, table, "val")) / (len(_by(s, table, "train")) + len(_by(s, table, "val"))) < 0.3


def test_not_enough_test_b_positives():
    table = _table()
    table.loc[table.hospital >= 5, "hypodensity"] = 0
    with pytest.raises(ValueError, match=r"test B needs \d+ positive and \d+ negative slices"):
        make_splits(table, "hypodensity", seed=0)


def test_check_splits_refuses_test_b_patient_in_train():
    table = _table()
    table.loc[table.hospital == 5, "patient_id"] = "h2_p0"  # the same patient seen at hospitals 2 and 5
    s = make_splits(table, "hypodensity", test_b_hospitals=(5,), seed=0)
    with pytest.raises(ValueError, match=r"patient\(s\) of test_b also in train: \['h2_p0'\].*covariate-shift"):
        check_splits(table, s)


def test_split_file_round_trip_and_errors(tmp_path):
    table = _table()
    s = make_splits(table, "hypodensity", seed=0)
    path = write_splits(s, tmp_path / "splits.csv")
    assert read_splits(path, table).equals(s)
    bad = s.copy()
    bad.loc[0, "split"] = "holdout"
    write_splits(bad, tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=r"bad\.csv: unknown split name\(s\) \['holdout'\]"):
        read_splits(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=r"splits\.csv: indices not in the manifest"):
        read_splits(path, table.iloc[:100])
    text = split_table(table, s, "hypodensity")
    lines = text.splitlines()
    assert lines[0].split() == ["split", "slices", "positive", "rate", "patients", "hospitals"]
    assert lines[3].split()[:2] == ["test_a", "40"] and lines[4].split()[:2] == ["test_b", "40"]


@pytest.mark.parametrize(
    ("header", "missing"), [("index,fold", "split"), ("row,split", "index"), ("index,split_name,extra", "split")]
)
def test_a_misnamed_splits_column_is_a_clear_error(tmp_path, header, missing):
    # A header with the right number of columns but a wrong name used to end in a bare KeyError.
    path = tmp_path / "splits.csv"
    path.write_text(f"{header}\n0,train" + (",x" if header.count(",") == 2 else "") + "\n")
    with pytest.raises(ValueError, match=rf"splits\.csv: no column '{missing}'; a splits CSV needs columns"):
        read_splits(path)


# The trap test set: hospitals 12, ... (the phantom's trap hospitals, appended after hospital 11).
_WITH_TRAP = (400, 300, 300, 300, 60, 60, 60, 60, 60, 60, 60, 50, 30)


@pytest.mark.parametrize(("protocol", "test_b_size"), [("paper", None), ("paper", "all"), ("patient", None)])
def test_trap_split_is_every_trap_slice_and_changes_no_other_split(protocol, test_b_size):
    plain, trap = _table(), _table(_WITH_TRAP)
    assert trap.iloc[: len(plain)][["hospital", "patient_id"]].equals(plain[["hospital", "patient_id"]])
    trap.loc[plain.index, "hypodensity"] = plain["hypodensity"]  # the same labels in hospitals 1-11
    s_plain = make_splits(plain, "hypodensity", protocol, test_b_size=test_b_size, seed=3)
    s_trap = make_splits(trap, "hypodensity", protocol, test_b_size=test_b_size, seed=3)
    assert "test_trap" not in set(s_plain.split)  # no trap hospital, no test_trap rows
    assert s_trap[s_trap.split != "test_trap"].reset_index(drop=True).equals(s_plain)  # the other 4 unchanged
    trap_rows = _by(s_trap, trap, "test_trap")
    assert len(trap_rows) == 80 and set(trap_rows.hospital) == {12, 13}
    assert sorted(trap_rows.index) == sorted(trap.index[trap.hospital >= 12])
    check_splits(trap, s_trap)
    explicit = make_splits(trap, "hypodensity", protocol, test_b_size=test_b_size, trap_hospitals=(13,), seed=3)
    assert set(_by(explicit, trap, "test_trap").hospital) == {13}


def test_trap_split_file_table_and_checks(tmp_path):
    table = _table(_WITH_TRAP)
    s = make_splits(table, "hypodensity", seed=0)
    path = write_splits(s, tmp_path / "splits.csv")
    assert read_splits(path, table).equals(s)  # test_trap is a known split name
    lines = split_table(table, s, "hypodensity").splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["train", "val", "test_a", "test_b", "test_trap"]
    assert lines[5].split()[1] == "80" and lines[5].split()[-1] == "12,13"
    plain = _table()
    assert "test_trap" not in split_table(plain, make_splits(plain, "hypodensity", seed=0), "hypodensity")
    table.loc[table.hospital == 12, "patient_id"] = "h2_p0"  # a trap patient also seen in training
    s = make_splits(table, "hypodensity", seed=0)
    with pytest.raises(ValueError, match=r"patient\(s\) of test_trap also in (train|val): \['h2_p0'\]"):
        check_splits(table, s)
