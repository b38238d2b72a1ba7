"""Files on disk: DICOM read back by plain pydicom, PNG masks, manifest, byte-identical reruns."""

import csv
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import UID

from mtlswin.cli import main
from mtlswin.data.phantom.generate import SynthConfig, iter_slices
from mtlswin.data.phantom.writer import MANIFEST_COLUMNS, write_dataset

CONFIG = SynthConfig(preset="demo", slices=40, size=64, seed=7, spurious=0.9)


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    summary = write_dataset(CONFIG, root)
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return root, rows, summary


def test_manifest_has_the_contract_columns(written):
    root, rows, summary = written
    assert tuple(rows[0]) == MANIFEST_COLUMNS == ("image", "mask", "patient_id", "hospital", "hypodensity",
                                                  "irregular_margin", "blend_sign", "fluid_level", "cue")  # fmt: skip
    assert len(rows) == summary["slices"] == 40
    for r in rows:
        assert (root / r["image"]).is_file()
        assert r["mask"] == "" or (root / r["mask"]).is_file()
        assert int(r["hospital"]) in range(1, 12) and r["cue"] in ("0", "1")
        if int(r["hospital"]) > 4:
            assert r["mask"] == ""


def test_dicom_and_masks_read_back_with_the_written_values(written):
    root, rows, _ = written
    records = list(iter_slices(CONFIG))
    assert len(records) == len(rows)
    for rec, row in zip(records, rows):
        ds = pydicom.dcmread(root / row["image"])
        hu = ds.pixel_array * ds.RescaleSlope + ds.RescaleIntercept
        assert np.array_equal(hu, rec.hu.astype(np.float64))
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
        assert ds.pixel_array.dtype == np.int16 and ds.RescaleIntercept == -1024 and ds.RescaleSlope == 1
        assert (ds.WindowCenter, ds.WindowWidth) == (40, 80)
        assert float(ds.PixelSpacing[0]) == pytest.approx(rec.spacing, rel=1e-5)
        assert ds.PatientID == row["patient_id"] and ds.InstanceNumber == rec.instance
        assert ds.InstitutionName == f"Synthetic Hospital {rec.hospital:02d}"
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert UID(uid).is_valid
        if row["mask"]:
            png = np.asarray(Image.open(root / row["mask"]))
            assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
            assert np.array_equal(png > 0, rec.mask)
        else:
            assert rec.mask is None or rec.hospital > 4
    sops = {pydicom.dcmread(root / r["image"]).SOPInstanceUID for r in rows}
    assert len(sops) == len(rows)


def test_same_seed_gives_byte_identical_files(written, tmp_path):
    root, _, _ = written
    write_dataset(CONFIG, tmp_path / "again")
    assert _digest(tmp_path / "again") == _digest(root)
    write_dataset(SynthConfig(preset="demo", slices=40, size=64, seed=8), tmp_path / "other")
    assert _digest(tmp_path / "other") != _digest(root)


def test_cli_writes_data_and_gallery(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["synth", "--out", str(out), "--slices", "60", "--size", "64", "--seed", "1", "--spurious", "0.5",
                 "--preview", "--quiet"])  # fmt: skip
    assert code == 0
    assert (out / "manifest.csv").is_file() and (out / "phantom.json").is_file()
    gallery = Image.open(out / "preview.png")
    assert gallery.size[0] > 300 and gallery.size[1] > 300
    assert "slices/s" in capsys.readouterr().out


def test_parallel_writer_writes_the_same_bytes(tmp_path):
    config = SynthConfig(preset="demo", slices=40, size=48, seed=4, twin_hospitals=(1, 5))
    write_dataset(config, tmp_path / "one")
    write_dataset(config, tmp_path / "two", workers=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) > 40 and any(f.parts[0] == "twins" for f in files)
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
