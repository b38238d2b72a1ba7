"""Decoding to HU and windowing, on pydicom's real CT slices and on synthetic files of every format."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from data_fixtures import write_ct_dicom
from mtlswin.data import apply_window, image_shape, load_mask, load_slice, read_hu
from mtlswin.data.readers import resolve_window


def _raw_hu(path):
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_real_head_ct_693_uncr(tmp_path):
    path = get_testdata_file("693_UNCR.dcm")
    hu = read_hu(path)
    print(f"693_UNCR.dcm HU range [{hu.min():.0f}, {hu.max():.0f}], shape {hu.shape}")
    assert hu.shape == (512, 512) and hu.dtype == np.float32
    np.testing.assert_array_equal(hu, _raw_hu(path))
    assert hu.min() <= -1000 and hu.max() > 1000  # air/padding and cortical bone
    brain = hu[200:320, 200:320]
    assert 0 < np.median(brain) < 80  # brain parenchyma is ~20-45 HU
    img = load_slice(path)  # brain window 40/80
    assert img.dtype == np.float32 and img.min() == 0.0 and img.max() == 1.0
    np.testing.assert_allclose(img, np.clip((hu - 0.0) / 80.0, 0, 1), atol=1e-6)
    assert 0.2 < np.median(img[200:320, 200:320]) < 0.8
    out = tmp_path / "693_UNCR_window40_80.png"
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(out)
    shutil.copy(out, "/tmp/mtlswin_data_check.png")
    assert load_slice(out).shape == (512, 512)
    assert resolve_window(path, "file") == (40.0, 100.0)


def test_real_jpeg2000_pixelrep_mismatch():
    """JPEG 2000 through pylibjpeg; pydicom corrects the signedness mismatch, so HU are plausible."""
    path = get_testdata_file("J2K_pixelrep_mismatch.dcm")
    hu = read_hu(path)
    assert hu.shape == (512, 512)
    assert -2100 <= hu.min() and hu.max() < 4000
    assert 0 < np.median(hu[250:330, 200:320]) < 80  # posterior fossa brain tissue
    # multi-valued WindowCenter/WindowWidth: the first preset is used
    assert resolve_window(path, "file") == (40.0, 100.0)
    assert 0.0 <= load_slice(path, "file").min() and load_slice(path, "file").max() == 1.0


def test_real_ct_small():
    path = get_testdata_file("CT_small.dcm")
    hu = read_hu(path)
    assert hu.shape == (128, 128)
    np.testing.assert_array_equal(hu, _raw_hu(path))
    with pytest.raises(ValueError, match=r"CT_small\.dcm: window='file' but the file has no WindowCenter"):
        load_slice(path, "file")


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_rescale_signed_and_unsigned(tmp_path, dtype):
    stored = (np.arange(16 * 16).reshape(16, 16) * 7).astype(dtype)
    intercept = -1024.0 if dtype == np.uint16 else -10.0
    path = write_ct_dicom(tmp_path / "s.dcm", stored, slope=2.0, intercept=intercept)
    np.testing.assert_array_equal(read_hu(path), stored.astype(np.float32) * 2 + intercept)


def test_compressed_rle_round_trip(tmp_path):
    from pydicom.uid import RLELossless

    stored = np.random.default_rng(0).integers(0, 3000, (32, 32)).astype(np.uint16)
    path = write_ct_dicom(tmp_path / "a.dcm", stored)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    np.testing.assert_array_equal(read_hu(tmp_path / "rle.dcm"), read_hu(path))


def test_apply_window_formula():
    hu = np.array([-100.0, 0.0, 40.0, 80.0, 1000.0])
    np.testing.assert_allclose(apply_window(hu, 40, 80), [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(apply_window(hu, 0, 200), [0.0, 0.5, 0.7, 0.9, 1.0])
    with pytest.raises(ValueError, match="window width must be a positive"):
        apply_window(hu, 40, 0)


def test_png_npy_and_masks(tmp_path):
    Image.fromarray(np.full((8, 6), 51, np.uint8)).save(tmp_path / "a.png")
    np.testing.assert_allclose(load_slice(tmp_path / "a.png"), 0.2)
    Image.fromarray(np.full((8, 6), 102, np.uint8)).convert("RGB").save(tmp_path / "a.jpg", quality=100)
    np.testing.assert_allclose(load_slice(tmp_path / "a.jpg"), 0.4, atol=2 / 255)  # RGB JPEG read as gray
    np.save(tmp_path / "hu.npy", np.full((8, 6), 60, np.int16))
    np.testing.assert_allclose(load_slice(tmp_path / "hu.npy", (40, 80)), 0.75)
    np.save(tmp_path / "win.npy", np.full((8, 6), 0.3, np.float32))
    np.testing.assert_allclose(load_slice(tmp_path / "win.npy"), 0.3)
    np.save(tmp_path / "bad.npy", np.full((8, 6), 60.0, np.float32))
    with pytest.raises(ValueError, match=r"bad\.npy: float \.npy must be a windowed slice"):
        load_slice(tmp_path / "bad.npy")
    mask = np.zeros((8, 6), np.uint8)
    mask[2:4, 1:3] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    got = load_mask(tmp_path / "m.png")
    assert got.dtype == np.int64 and got.sum() == 4 and got.max() == 1
    assert image_shape(tmp_path / "m.png") == (8, 6) == image_shape(tmp_path / "hu.npy")


def test_nifti_slices(tmp_path):
    vol = np.zeros((10, 12, 3), np.int16)  # (x, y, z)
    vol[2, 5, 1] = 70
    seg = (vol > 0).astype(np.uint8) * 3
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), tmp_path / "seg.nii")
    hu = read_hu(f"{tmp_path}/ct.nii.gz#1")
    assert hu.shape == (12, 10) == image_shape(f"{tmp_path}/ct.nii.gz#1") and hu[5, 2] == 70
    mask = load_mask(f"{tmp_path}/seg.nii#1")
    assert mask[5, 2] == 3 and mask.sum() == 3
    with pytest.raises(ValueError, match=r"ct\.nii\.gz: a NIfTI volume needs a slice index"):
        read_hu(tmp_path / "ct.nii.gz")
    with pytest.raises(ValueError, match=r"ct\.nii\.gz#3: slice index out of range"):
        read_hu(f"{tmp_path}/ct.nii.gz#3")


def test_errors_name_the_file(tmp_path):
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom file at all")
    with pytest.raises(ValueError, match=r"junk\.dcm: unreadable DICOM file"):
        read_hu(tmp_path / "junk.dcm")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match=r"junk\.png: unreadable image file"):
        load_slice(tmp_path / "junk.png")
    with pytest.raises(ValueError, match=r"a\.txt: unsupported file type"):
        load_slice(tmp_path / "a.txt")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "w.png")
    with pytest.raises(ValueError, match=r"w\.png: an 8-bit \.png image is already windowed"):
        read_hu(tmp_path / "w.png")
