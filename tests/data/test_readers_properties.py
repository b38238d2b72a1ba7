"""Every reader, fuzzed: a finite windowed slice or a ValueError that names the file, never anything else.

Random shapes and dtypes, NaN and Inf at random positions, truncated files, DICOM headers with wrong or
missing rescale values or absurd sizes, NIfTI volumes of zero or one slice and absurd dimensions. A slice
that holds NaN or Inf after decoding is refused with :class:`NonFiniteError` by :func:`load_slice`, and
:func:`check_values` (the manifest's check) refuses it too. Examples per test: the ``ci`` profile of
tests/conftest.py.
"""

from __future__ import annotations

import gzip
import io
import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from data_fixtures import write_ct_dicom
from mtlswin.data.readers import NonFiniteError, check_finite, check_values, load_mask, load_slice

FLOATS = ("float16", "float32", "float64")
DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "int32", "int64", *FLOATS, "complex64")
HOLES = (np.nan, np.inf, -np.inf)


@st.composite
def with_holes(draw, shape, dtype: str, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` (values in [low, high]) with NaN / +Inf / -Inf at random positions
    when the dtype can hold them."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arr = (low + (high - low) * rng.random(shape)).astype(dtype)
    if arr.dtype.kind in "fc" and arr.size:
        for _ in range(draw(st.integers(0, 3))):
            arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from(HOLES))
    return arr


def outcome(read, path) -> np.ndarray | ValueError:
    """What ``read(path)`` gives: the array, or the ValueError (which must name the file). Anything else fails."""
    try:
        return read(path)
    except ValueError as err:
        assert Path(str(path).split("#")[0]).name in str(err), err
        return err


def assert_finite_slice(got, shape=None) -> None:
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.ndim == 2, got
    assert np.isfinite(got).all() and got.min(initial=0) >= 0 and got.max(initial=0) <= 1
    if shape is not None:
        assert got.shape == shape


def assert_refused_by_name(got, arr) -> None:
    """``got`` is the NonFiniteError of ``arr``: its message counts the NaN, +Inf and -Inf voxels."""
    assert isinstance(got, NonFiniteError), got
    values = np.abs(arr) if arr.dtype.kind == "c" else arr
    for name, count in (("NaN", np.isnan(values).sum()), ("+Inf", np.isposinf(values).sum())):
        if count:
            assert f"{count} {name}" in str(got)
    if np.isneginf(values).sum():
        assert f"{np.isneginf(values).sum()} -Inf" in str(got)


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@given(
    shape=st.lists(st.integers(0, 32), min_size=0, max_size=3).map(tuple),
    dtype=st.sampled_from(DTYPES),
    data=st.data(),
)
def test_npy_any_shape_and_dtype_gives_a_finite_slice_or_a_named_refusal(shape, dtype, data):
    low, high = (-200.0, 200.0) if np.dtype(dtype).kind in "iu" and dtype != "uint8" else (0.0, 1.0)
    arr = data.draw(with_holes(shape, dtype, low, high))
    k = data.draw(st.one_of(st.none(), st.integers(0, 3)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slice.npy"
        np.save(path, arr)
        name = str(path) if k is None else f"{path}#{k}"
        got = outcome(load_slice, name)
        chosen = arr if k is None else (arr[k] if arr.ndim == 3 and k < arr.shape[0] else None)
        if chosen is not None and chosen.ndim == 2 and chosen.dtype.kind in "fc" and not np.isfinite(chosen).all():
            assert_refused_by_name(got, chosen)
            assert isinstance(outcome(check_values, name), NonFiniteError)
        elif not isinstance(got, ValueError):
            assert_finite_slice(got, chosen.shape)
        mask = outcome(load_mask, name)
        assert isinstance(mask, ValueError) or (mask.dtype == np.int64 and mask.ndim == 2)


@given(kind=st.sampled_from(("npy", "nii", "nii.gz", "dcm", "png", "jpg")), fraction=st.floats(0, 0.99))
def test_a_truncated_file_of_any_kind_is_refused_by_name(kind, fraction):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"slice.{kind}"
        pixels = np.random.default_rng(0).integers(0, 200, (16, 16))
        if kind == "npy":
            np.save(path, pixels.astype(np.int16))
        elif kind.startswith("nii"):
            nib.save(nib.Nifti1Image(pixels[..., None].astype(np.int16), np.eye(4)), path)
            path = Path(f"{path}#0")
        elif kind == "dcm":
            write_ct_dicom(path, pixels.astype(np.int16))
        else:
            Image.fromarray(pixels.astype(np.uint8)).save(path)
        truncate(Path(str(path).split("#")[0]), fraction)
        got = outcome(load_slice, path)
        if not isinstance(got, ValueError):  # a JPEG cut inside its padding can still decode whole
            assert_finite_slice(got, (16, 16))


def set_scaling(path: Path, slope: float, inter: float) -> None:
    """Write ``scl_slope`` / ``scl_inter`` into a saved NIfTI file as given (nibabel's own setter refuses
    0, NaN and Inf, and saving an array resets them)."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    header["scl_slope"], header["scl_inter"] = slope, inter
    raw = header.binaryblock + raw[len(header.binaryblock) :]
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


@given(
    shape=st.tuples(st.integers(1, 16), st.integers(1, 16), st.integers(0, 3)),
    dtype=st.sampled_from(("uint8", "int16", "float32", "float64")),
    slope=st.sampled_from((None, 1.0, 0.5, 0.0, 1e38, np.nan, np.inf, -np.inf)),
    inter=st.sampled_from((None, 0.0, -1024.0, np.nan, np.inf)),
    gz=st.booleans(),
    data=st.data(),
)
def test_nifti_volumes_of_any_depth_dtype_and_scale(shape, dtype, slope, inter, gz, data):
    vol = data.draw(with_holes(shape, dtype, -100.0, 200.0) if dtype != "uint8" else with_holes(shape, dtype, 0, 200))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("ct.nii.gz" if gz else "ct.nii")
        nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
        if slope is not None:
            set_scaling(path, slope, np.nan if inter is None else inter)
        try:
            with np.errstate(all="ignore"):
                raw = np.asarray(nib.load(path).dataobj).reshape(shape)  # as nibabel scales it
        except Exception:  # e.g. a valid slope with a NaN intercept: nibabel refuses the header
            raw = None
        expected = None if raw is None else raw.astype(np.float32)
        for k in range(shape[2] + 1):
            got = outcome(load_slice, f"{path}#{k}")
            if raw is None:
                assert isinstance(got, ValueError)
            elif k == shape[2]:
                assert isinstance(got, ValueError) and "out of range" in str(got)
            elif not np.isfinite(raw[:, :, k]).all():  # refused as read, before the float32 HU
                assert_refused_by_name(got, raw[:, :, k])
                assert isinstance(outcome(check_values, f"{path}#{k}"), NonFiniteError)
                assert isinstance(outcome(load_mask, f"{path}#{k}"), NonFiniteError)
            elif not np.isfinite(expected[:, :, k]).all():  # HU past float32
                assert_refused_by_name(got, expected[:, :, k])
            else:
                assert_finite_slice(got, (shape[1], shape[0]))


@given(dims=st.tuples(st.integers(1, 32767), st.integers(1, 32767), st.integers(1, 32767)), gz=st.booleans())
def test_nifti_header_with_absurd_dimensions_is_refused_fast(dims, gz):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("big.nii.gz" if gz else "big.nii")
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), path)
        img = nib.load(path)
        header = img.header.copy()
        header.set_data_shape(dims)
        header["vox_offset"] = 352
        raw = header.binaryblock + b"\0" * 4 + np.zeros(32, np.int16).tobytes()  # header + 64 bytes of data
        if gz:
            path.write_bytes(gzip.compress(raw))
        else:
            path.write_bytes(raw)
        got = outcome(load_slice, f"{path}#0")
        if np.prod(dims) > 32:
            assert isinstance(got, ValueError) and "NIfTI" in str(got)


SLOPES = ("1", "0.5", "1e38", "-1e38", "nan", "inf", "-inf", "", "abc ", None)


@st.composite
def dicom_files(draw, folder: Path, name: str = "slice.dcm") -> tuple[Path, np.ndarray | None]:
    """A CT DICOM file with random pixels and rescale values (valid, huge, NaN, Inf, empty, text, missing), or
    absurd Rows/Columns; returns the path and the HU it should hold (None when the header cannot give them)."""
    rows, cols = draw(st.integers(1, 32)), draw(st.integers(1, 32))
    dtype = draw(st.sampled_from((np.int16, np.uint16)))
    stored = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 3000, (rows, cols)).astype(dtype)
    slope, inter = draw(st.sampled_from(SLOPES)), draw(st.sampled_from(SLOPES))
    path = write_ct_dicom(folder / name, stored)
    ds = pydicom.dcmread(path)
    for tag, value in (("RescaleSlope", slope), ("RescaleIntercept", inter)):
        if value is None:
            delattr(ds, tag)
        else:  # written as text, invalid values included
            ds[tag] = pydicom.DataElement(tag, "DS", "7.25" if value == "abc " else value, validation_mode=0)
    if draw(st.booleans()):
        ds.Rows, ds.Columns = draw(st.sampled_from(((65535, 65535), (0, 0), (rows + 1, cols))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)
    if "abc " in (slope, inter):
        path.write_bytes(path.read_bytes().replace(b"7.25", b"abc "))
    return path, stored


@given(data=st.data())
def test_dicom_with_any_rescale_or_size_gives_a_finite_slice_or_a_named_refusal(data):
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = data.draw(dicom_files(Path(tmp)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = outcome(load_slice, path)
            check = outcome(check_values, path)
        if isinstance(got, NonFiniteError):
            assert isinstance(check, ValueError)  # the manifest refuses what the reader refuses
        elif not isinstance(got, ValueError):
            assert_finite_slice(got)
        if isinstance(check, ValueError) and "Rescale" in str(check):
            assert isinstance(got, ValueError)


@given(
    shape=st.tuples(st.integers(1, 32), st.integers(1, 32)),
    mode=st.sampled_from(("L", "RGB", "P")),
    fmt=st.sampled_from(("png", "jpg", "bmp", "tif")),
    seed=st.integers(0, 2**32 - 1),
)
def test_raster_images_give_a_finite_slice(shape, mode, fmt, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3)).astype(np.uint8)
    image = Image.fromarray(pixels).convert(mode) if mode != "RGB" else Image.fromarray(pixels)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"slice.{fmt}"
        if fmt == "jpg" and mode == "P":
            image = image.convert("L")
        image.save(path)
        assert_finite_slice(load_slice(path), shape)


@given(dtype=st.sampled_from(DTYPES), data=st.data())
def test_check_finite_counts_every_kind(dtype, data):
    arr = data.draw(with_holes((5, 7), dtype))
    values = np.abs(arr) if arr.dtype.kind == "c" else arr
    if arr.dtype.kind in "fc" and not np.isfinite(values).all():
        with pytest.raises(NonFiniteError, match=r"x\.npy, slice 3: \d+ of 35 voxels are not finite") as err:
            check_finite(arr, "x.npy", 3)
        assert_refused_by_name(err.value, arr)
    else:
        assert check_finite(arr, "x.npy", 3) is arr
