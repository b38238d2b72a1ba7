"""Volumes and DICOM series: every slice for predict and pretrain, and one scan-level row per scan."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from data_fixtures import write_ct_dicom
from mtlswin.data.inputs import SkipLog
from mtlswin.data.readers import load_slice
from mtlswin.data.transforms import resize_pair
from mtlswin.data.volumes import expand_slices
from mtlswin.models import create_model, save_model
from mtlswin.models.configs import TEST_ENCODER


def _volume(path, k=5, size=32):
    rng = np.random.default_rng(0)
    vol = rng.integers(-100, 150, (size, size, k)).astype(np.int16)  # (x, y, z), HU
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    return path


def _series(folder, k=4, size=32):
    """k slices of one series, written in shuffled file order; z = ImagePositionPatient decides the order."""
    import pydicom

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    uid = pydicom.uid.generate_uid()
    for i, z in enumerate([2, 0, 3, 1][:k]):
        p = write_ct_dicom(folder / f"f{i}.dcm", rng.integers(900, 1200, (size, size)).astype(np.int16))
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID, ds.ImagePositionPatient, ds.InstanceNumber = uid, [0, 0, float(z)], z + 1
        ds.save_as(p)
    return folder


def test_expand_volume_series_and_lone_files(tmp_path):
    vol = _volume(tmp_path / "ct.nii.gz")
    _series(tmp_path / "scans" / "P1")
    (tmp_path / "bad.nii.gz").write_bytes(b"not a volume")
    lines = []
    skipped = SkipLog(report=lines.append)
    slices = expand_slices([vol, tmp_path / "scans", tmp_path / "bad.nii.gz", f"{vol}#2"], skipped)
    vol_slices = [s for s in slices if s.scan == "ct"]
    assert [s.slice_index for s in vol_slices] == [0, 1, 2, 3, 4] and vol_slices[3].path == f"{vol}#3"
    ser = [s for s in slices if s.scan == "P1"]
    assert [s.slice_index for s in ser] == [0, 1, 2, 3]
    assert [s.path.name for s in ser] == ["f1.dcm", "f3.dcm", "f0.dcm", "f2.dcm"]  # sorted by z
    lone = [s for s in slices if s.scan is None]
    assert len(lone) == 1 and lone[0].path == f"{vol}#2"
    assert len(slices) == 10 and len({s.name for s in slices}) == 10
    assert len(skipped) == 1 and "bad.nii.gz" in lines[0]


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = create_model("swin", **TEST_ENCODER)
    return save_model(model, tmp_path / "model.safetensors"), model.eval()


def test_predict_volume_and_series_give_slice_and_scan_rows(tmp_path, checkpoint):
    from mtlswin.evaluation.predict import predict_files

    path, model = checkpoint
    vol = _volume(tmp_path / "ct.nii.gz", k=5)
    _series(tmp_path / "scans" / "P1", k=4)
    (tmp_path / "junk.dcm").write_bytes(b"junk")
    table = predict_files(path, [vol, tmp_path / "scans", tmp_path / "junk.dcm"], tmp_path / "out")
    assert len(table) == 9 and list(table.columns[-2:]) == ["scan", "slice_index"]
    assert pd.read_csv(tmp_path / "out" / "skipped.csv")["file"].str.endswith("junk.dcm").all()
    scans = pd.read_csv(tmp_path / "out" / "scans.csv").set_index("scan")
    assert sorted(scans.index) == ["P1", "ct"] and scans.loc["ct", "n_slices"] == 5 and scans.loc["P1", "n_slices"] == 4
    for scan, group in table.groupby("scan"):
        with torch.inference_mode():
            x = torch.stack([resize_pair(torch.from_numpy(load_slice(f, (40, 80)))[None],
                                         torch.zeros(1, 1, dtype=torch.long), 32)[0] for f in group["file"]])  # fmt: skip
            probs = model(x)["logits"].softmax(1)[:, 1].numpy()
        np.testing.assert_allclose(group["probability"], probs, atol=1e-5)
        k = int(np.argmax(probs))
        assert scans.loc[scan, "max_slice"] == group["slice_index"].iloc[k]
        assert scans.loc[scan, "max_probability"] == pytest.approx(float(probs.max()), abs=1e-5)
        assert scans.loc[scan, "max_name"] == group["name"].iloc[k]
    assert str(scans.loc["P1", "file"]).endswith("P1") and str(scans.loc["ct", "file"]).endswith("ct.nii.gz")


def test_pretrain_lists_every_slice_of_volumes_series_and_manifests(tmp_path):
    from mtlswin.pretrain.run import list_pretrain_slices

    vol = _volume(tmp_path / "ct.nii.gz", k=3)
    _series(tmp_path / "scans" / "P1", k=4)
    (tmp_path / "a.npy").write_bytes(b"")
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.float32))
    pd.DataFrame({"image": ["a.npy", "ct.nii.gz#1"], "label": [1, 0]}).to_csv(tmp_path / "manifest.csv", index=False)
    slices = list_pretrain_slices([vol, tmp_path / "scans", tmp_path / "manifest.csv"], SkipLog())
    assert [s.slice_index for s in slices if s.scan == "ct"] == [0, 1, 2]
    assert len([s for s in slices if s.scan == "P1"]) == 4
    assert [str(s.path) for s in slices if s.scan is None] == [str(tmp_path / "a.npy"), f"{tmp_path / 'ct.nii.gz'}#1"]
