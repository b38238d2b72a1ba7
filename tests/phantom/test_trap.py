"""The trap test set: extra hospitals 12, ... with the cue ANTI-correlated with the label."""

import csv
import json

import numpy as np
import pydicom
import pytest

from mtlswin.cli import main
from mtlswin.data.manifest import read_manifest
from mtlswin.data.phantom.cue import phi
from mtlswin.data.phantom.generate import SynthConfig
from mtlswin.data.phantom.hospitals import PROFILES, profile_of, trap_counts
from mtlswin.data.phantom.writer import write_dataset

BASE = {"preset": "demo", "slices": 300, "size": 64, "seed": 11, "spurious": 0.9}


def _rows(root):
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trap_phantom(tmp_path_factory):
    """300 slices in hospitals 1-11 and 2 trap hospitals of 90 slices each, written by the CLI."""
    out = tmp_path_factory.mktemp("trap") / "phantom"
    code = main(["synth", "--out", str(out), "--slices", "300", "--size", "64", "--seed", "11", "--spurious", "0.9",
                 "--trap-hospitals", "2", "--trap-slices", "180", "--quiet"])  # fmt: skip
    assert code == 0
    return out, _rows(out)


def test_trap_cue_has_the_opposite_sign_of_the_training_hospitals(trap_phantom):
    root, rows = trap_phantom
    hosp = np.array([int(r["hospital"]) for r in rows])
    cue, label = np.array([int(r["cue"]) for r in rows]), np.array([int(r["hypodensity"]) for r in rows])
    train, trap, shifted = hosp <= 4, hosp >= 12, (hosp >= 5) & (hosp <= 11)
    assert phi(cue[train], label[train]) > 0.5
    assert phi(cue[trap], label[trap]) < -0.5
    assert abs(phi(cue[shifted], label[shifted])) < 0.3
    assert label[trap].sum() >= 10  # enough positives for the phi to mean something
    summary = json.loads((root / "phantom.json").read_text())["summary"]
    assert summary["cue_phi_trap_hospitals"] == pytest.approx(phi(cue[trap], label[trap]))
    assert summary["cue_phi_other_hospitals"] == pytest.approx(phi(cue[shifted], label[shifted]))


def test_trap_hospitals_have_the_training_profiles_masks_and_a_twin_for_every_slice(trap_phantom):
    root, rows = trap_phantom
    trap = [r for r in rows if int(r["hospital"]) >= 12]
    assert [sum(int(r["hospital"]) == h for r in trap) for h in (12, 13)] == [90, 90]
    assert all(r["twin"] for r in trap)
    assert not any(r["twin"] for r in rows if int(r["hospital"]) <= 11)  # no --twins: only the trap has them
    hematoma = [
        r for r in trap if any(r[m] == "1" for m in ("hypodensity", "irregular_margin", "blend_sign", "fluid_level"))
    ]
    assert hematoma and all(r["mask"] for r in hematoma)  # masks, as in hospitals 1-4
    ds = pydicom.dcmread(root / trap[0]["image"])
    assert ds.InstitutionName == "Synthetic Hospital 12" and ds.ConvolutionKernel == PROFILES[1].kernel
    twins = read_manifest(root / "manifest.csv").twins()
    trap_idx = [i for i, r in enumerate(rows) if int(r["hospital"]) >= 12]
    original = np.array([int(rows[i]["cue"]) for i in trap_idx])
    assert (twins.table.loc[trap_idx, "cue"].to_numpy() == 1 - original).all()  # a twin: the training direction


def test_trap_hospitals_leave_hospitals_1_to_11_byte_identical(tmp_path):
    write_dataset(SynthConfig(**{**BASE, "slices": 40}), tmp_path / "a")
    write_dataset(SynthConfig(**{**BASE, "slices": 40, "trap_hospitals": 1, "trap_slices": 12}), tmp_path / "b")
    files_a, files_b = (sorted(p.relative_to(tmp_path / d) for p in (tmp_path / d).rglob("*") if p.suffix in (".dcm", ".png"))
                        for d in ("a", "b"))  # fmt: skip
    assert files_a == [f for f in files_b if "h12" not in f.parts]
    assert len(files_b) > len(files_a)
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    rows_a, rows_b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [{k: v for k, v in r.items() if k != "twin"} for r in rows_b[: len(rows_a)]] == rows_a
    assert "trap_hospitals" not in json.loads((tmp_path / "a" / "phantom.json").read_text())["config"]
    assert json.loads((tmp_path / "b" / "phantom.json").read_text())["config"]["trap_hospitals"] == 1


def test_trap_options_and_counts():
    config = SynthConfig(**{**BASE, "trap_hospitals": 3})
    assert config.hospitals == tuple(range(1, 15))
    assert config.counts()[11:] == trap_counts(3, sum(config.counts()[4:11]))  # default: the size of 5-11
    assert trap_counts(3, 10) == (4, 3, 3) and trap_counts(0, 0) == ()
    assert SynthConfig(**BASE).counts() == SynthConfig(**{**BASE, "trap_hospitals": 2}).counts()[:11]
    assert profile_of(13).kernel == PROFILES[2].kernel and profile_of(16).fov_mm == PROFILES[1].fov_mm
    with pytest.raises(ValueError, match="trap_hospitals"):
        SynthConfig(**{**BASE, "trap_slices": 20})  # a trap size without trap hospitals is not silently ignored
    with pytest.raises(ValueError, match="trap_hospitals"):
        SynthConfig(**{**BASE, "trap_hospitals": -1})
