"""``test_scale``: the test hospitals (5-11, traps) get N times the slices; hospitals 1-4 stay byte-identical."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from mtlswin.data.manifest import read_manifest
from mtlswin.data.phantom.generate import SynthConfig
from mtlswin.data.phantom.writer import write_dataset
from mtlswin.data.splits import make_splits

BASE = {"preset": "demo", "slices": 60, "size": 64, "seed": 5, "spurious": 0.9, "twin_hospitals": (1, 5),
        "trap_hospitals": 1}  # fmt: skip


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.suffix in (".dcm", ".png")}  # fmt: skip


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    for scale in (1, 2):
        write_dataset(SynthConfig(**BASE, test_scale=scale), root / f"x{scale}")
    return root / "x1", root / "x2"


def test_scale_2_leaves_the_training_hospitals_byte_identical(scaled):
    one, two = scaled
    files_1, files_2 = _files(one), _files(two)
    train = {rel: digest for rel, digest in files_1.items() if rel.split("/")[1] in ("h01", "h02", "h03", "h04")}
    assert train and all(files_2.get(rel) == digest for rel, digest in train.items())
    assert {rel for rel in files_2 if rel.split("/")[1] in ("h01", "h02", "h03", "h04")} == set(train)
    rows_1, rows_2 = _rows(one), _rows(two)
    n_train = sum(int(r["hospital"]) <= 4 for r in rows_1)
    assert rows_1[:n_train] == rows_2[:n_train]  # the same manifest rows, in the same place


def test_scale_2_doubles_every_test_hospital_with_more_patients(scaled):
    info_1, info_2 = (json.loads((d / "phantom.json").read_text()) for d in scaled)
    per_1, per_2 = info_1["summary"]["per_hospital"], info_2["summary"]["per_hospital"]
    assert all(per_2[h] == per_1[h] for h in ("1", "2", "3", "4"))
    assert all(per_2[h] == 2 * per_1[h] for h in per_1 if int(h) >= 5) and "12" in per_1
    patients = [{h: len({r["patient_id"] for r in _rows(d) if r["hospital"] == h}) for h in per_1} for d in scaled]
    assert sum(patients[1][h] for h in per_1 if int(h) >= 5) > sum(patients[0][h] for h in per_1 if int(h) >= 5)
    assert "test_scale" not in info_1["config"] and info_2["config"]["test_scale"] == 2


def test_splits_of_the_training_hospitals_do_not_move_and_test_b_doubles(scaled):
    parts = []
    for root in scaled:
        table = read_manifest(root / "manifest.csv", check_files=False).table
        parts.append(make_splits(table, test_a_fraction=0.25, test_b_size="all", seed=0))
    one, two = parts
    for split in ("train", "val", "test_a"):
        assert one.loc[one["split"] == split, "index"].tolist() == two.loc[two["split"] == split, "index"].tolist()
    for split in ("test_b", "test_trap"):
        assert (two["split"] == split).sum() == 2 * (one["split"] == split).sum() > 0


def test_test_scale_is_checked_and_1_is_the_phantom_of_before():
    config = SynthConfig(**BASE)
    assert config == SynthConfig(**BASE, test_scale=1) and "test_scale" not in config.identity()
    doubled = SynthConfig(**{**BASE, "trap_slices": 5}, test_scale=3).counts()
    assert doubled[:4] == config.counts()[:4] and sum(doubled[11:]) == 15
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="test_scale"):
            SynthConfig(**BASE, test_scale=bad)
