"""Importers on small fake copies of each data set's layout."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from data_fixtures import write_ct_dicom
from mtlswin.data import load_mask, load_slice, read_hu
from mtlswin.data.importers import import_authors_npz, import_bhsd, import_ct_ich, import_rsna
from mtlswin.data.manifest import read_manifest
from mtlswin.data.splits import read_splits


def test_authors_npz(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    arrays = {}
    for name, n in (("train", 5), ("valid", 2), ("test", 3)):
        image = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
        mask = np.zeros((n, 16, 16), np.uint8)
        mask[:, 4:8, 4:9] = 255
        exist = np.array([1, 0] * n)[:n]
        label = np.array([1, 0, 0] * n)[:n]
        np.savez(src / f"{name}.npz", image=image, label=label, mask=mask, mask_exist=exist)
        arrays[name] = (image, label, exist)
    res = import_authors_npz(src, tmp_path / "out")
    m = read_manifest(res.manifest)
    assert res.rows == len(m) == 10 and m.markers == ("hypodensity",)
    splits = read_splits(res.splits, m.table)
    assert splits["split"].value_counts().to_dict() == {"train": 5, "test_a": 3, "val": 2}
    image, label, exist = arrays["test"]
    rows = m.table[m.table["source"] == "test.npz"]
    for j, idx in enumerate(rows.index):
        np.testing.assert_allclose(load_slice(m.image_path(idx)) * 255, image[j], atol=1e-4)
        assert m.table.at[idx, "hypodensity"] == label[j]
        assert (m.mask_path(idx) is not None) == bool(exist[j])
    first_masked = rows.index[0]
    assert load_mask(m.mask_path(first_masked)).sum() == 20  # 0/255 stored -> 0/1 read


def test_authors_npz_errors(tmp_path):
    with pytest.raises(ValueError, match=r"none of train\.npz, valid\.npz, test\.npz found"):
        import_authors_npz(tmp_path, tmp_path / "out")
    np.savez(tmp_path / "train.npz", image=np.zeros((2, 4, 4), np.uint8), label=np.zeros(2))
    with pytest.raises(ValueError, match=r"train\.npz: missing key\(s\) \['mask', 'mask_exist'\]"):
        import_authors_npz(tmp_path, tmp_path / "out")


def test_ct_ich(tmp_path):
    src = tmp_path / "ct_ich"
    (src / "ct_scans").mkdir(parents=True)
    (src / "masks").mkdir()
    rows = []
    for patient in (49, 50):
        vol = np.random.default_rng(patient).integers(-1000, 100, (20, 24, 3)).astype(np.int16)
        seg = np.zeros((20, 24, 3), np.uint8)
        seg[5:9, 6:10, 1] = 255
        nib.save(nib.Nifti1Image(vol, np.eye(4)), src / "ct_scans" / f"{patient:03d}.nii")
        nib.save(nib.Nifti1Image(seg, np.eye(4)), src / "masks" / f"{patient:03d}.nii")
        for s in (1, 2, 3):
            bleed = int(s == 2)
            rows.append([patient, s, 0, bleed, 0, 0, 0, 1 - bleed, 0])
    rows.append([51, 1, 0, 0, 0, 0, 0, 1, 0])  # no volume on disk
    cols = ["PatientNumber", "SliceNumber", "Intraventricular", "Intraparenchymal", "Subarachnoid", "Epidural",
            "Subdural", "No_Hemorrhage", "Fracture_Yes_No"]  # fmt: skip
    pd.DataFrame(rows, columns=cols).to_csv(src / "hemorrhage_diagnosis_raw_ct.csv", index=False)
    res = import_ct_ich(src, tmp_path / "out")
    m = read_manifest(res.manifest, target="hemorrhage")
    assert len(m) == 6 and len(res.skipped) == 1 and "patient 51" in res.skipped[0]
    assert m.table["image"].iloc[1] == "../ct_ich/ct_scans/049.nii#1"
    assert m.table["hemorrhage"].tolist() == [0, 1, 0, 0, 1, 0] and m.table["intraparenchymal"].sum() == 2
    vol = np.asarray(nib.load(src / "ct_scans" / "050.nii").dataobj)
    np.testing.assert_array_equal(read_hu(m.image_path(4)), vol[:, :, 1].T)
    assert load_mask(m.mask_path(4)).astype(bool).sum() == 16 and load_mask(m.mask_path(3)).sum() == 0


def test_rsna(tmp_path):
    src = tmp_path / "rsna"
    (src / "stage_2_train").mkdir(parents=True)
    subtypes = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]
    lines = []
    for image_id, positive in (("ID_aa01", "subdural"), ("ID_bb02", None), ("ID_cc03", None)):
        lines += [(f"{image_id}_{s}", int(s in (positive, "any") and positive is not None)) for s in subtypes]
    lines += lines[:6]  # duplicated rows, as in stage_2_train.csv
    pd.DataFrame(lines, columns=["ID", "Label"]).to_csv(src / "stage_2_train.csv", index=False)
    stored = np.full((16, 16), 1064, np.int16)
    write_ct_dicom(src / "stage_2_train" / "ID_aa01.dcm", stored, patient_id="ID_p1")
    write_ct_dicom(src / "stage_2_train" / "ID_bb02.dcm", stored, patient_id="ID_p1")
    res = import_rsna(src, tmp_path / "out")  # ID_cc03 has no file
    m = read_manifest(res.manifest, target="any")
    assert len(m) == 2 and len(res.skipped) == 1 and "ID_cc03.dcm" in res.skipped[0]
    assert m.table["subdural"].tolist() == [1, 0] and m.table["any"].tolist() == [1, 0]
    assert m.table["patient_id"].tolist() == ["ID_p1", "ID_p1"]
    np.testing.assert_allclose(load_slice(m.image_path(0)), 0.5)  # 1064 - 1024 = 40 HU, window 40/80


def test_bhsd(tmp_path):
    src = tmp_path / "bhsd"
    (src / "images").mkdir(parents=True)
    (src / "ground truths").mkdir()
    vol = np.zeros((12, 10, 4), np.int16)
    seg = np.zeros((12, 10, 4), np.uint8)
    seg[2:4, 2:4, 1] = 2  # IPH on slice 1
    seg[6:8, 6:8, 1] = 5  # SDH on slice 1
    seg[0:2, 0:2, 3] = 3  # IVH on slice 3
    for name in ("ID_001", "ID_002"):
        nib.save(nib.Nifti1Image(vol, np.eye(4)), src / "images" / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), src / "ground truths" / "ID_001.nii.gz")
    res = import_bhsd(src, tmp_path / "out")
    m = read_manifest(res.manifest, target="hemorrhage")
    assert len(m) == 4 and len(res.skipped) == 1 and "ID_002" in res.skipped[0]
    t = m.table
    assert t["hemorrhage"].tolist() == [0, 1, 0, 1]
    assert t["intraparenchymal"].tolist() == [0, 1, 0, 0] and t["subdural"].tolist() == [0, 1, 0, 0]
    assert t["intraventricular"].tolist() == [0, 0, 0, 1] and set(t["patient_id"]) == {"ID_001"}
    assert t["mask"].iloc[1] == "../bhsd/ground truths/ID_001.nii.gz#1"
    assert sorted(np.unique(load_mask(m.mask_path(1))).tolist()) == [0, 2, 5]
