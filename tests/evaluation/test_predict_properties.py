"""``predict`` fuzzed: every slice ends in a finite probability or a named row of skipped.csv.

Inputs are drawn from every reader's bad cases (NaN and Inf at random positions, truncated files, volumes of
zero or one slice, DICOM rescale values that are NaN, Inf, empty or huge); the property: predictions.csv has
no empty probability, every label is the thresholded probability, and every slice is either predicted or
skipped with a reason (NaN / Inf named when the slice holds them). Examples: the ``ci`` profile of tests/conftest.py.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from data_fixtures import write_ct_dicom
from mtlswin.evaluation import predict as predict_module
from mtlswin.evaluation.predict import predict_files
from mtlswin.models import create_model, save_model
from mtlswin.models.configs import TEST_ENCODER
from mtlswin.runs import Run

HOLES = (np.nan, np.inf, -np.inf)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(create_model("swin", **TEST_ENCODER), tmp_path_factory.mktemp("model") / "model.safetensors")


@st.composite
def an_input(draw, folder: Path, i: int) -> tuple[Path, int, int]:
    """One input file; returns (path, its number of slices, how many of them hold NaN or Inf)."""
    kind = draw(st.sampled_from(("npy", "nifti", "dicom", "truncated")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(1, 32)), draw(st.integers(1, 32))
    holes = draw(st.lists(st.sampled_from(HOLES), max_size=2))
    if kind == "npy":
        arr = rng.random((h, w)).astype(draw(st.sampled_from(("float16", "float32", "float64"))))
        for value in holes:
            arr.flat[rng.integers(arr.size)] = value
        np.save(folder / f"s{i}.npy", arr)
        return folder / f"s{i}.npy", 1, int(bool(holes))
    if kind == "nifti":
        depth = draw(st.integers(0, 3))
        vol = rng.integers(-100, 150, (w, h, depth)).astype(np.float32)
        bad = set()
        for value in holes if depth else ():
            z = int(rng.integers(depth))
            vol[int(rng.integers(w)), int(rng.integers(h)), z] = value
            bad.add(z)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"v{i}.nii.gz")
        return folder / f"v{i}.nii.gz", depth, len(bad)
    if kind == "dicom":
        slope = draw(st.sampled_from((1.0, 1e38, np.nan, np.inf)))
        path = write_ct_dicom(folder / f"d{i}.dcm", rng.integers(900, 1200, (h, w)).astype(np.int16), slope=slope)
        return path, 1, int(not slope < 1e30)  # a non-finite or overflowing slope: refused
    path = folder / f"t{i}.npy"
    np.save(path, rng.random((h, w)).astype(np.float32))
    path.write_bytes(path.read_bytes()[: draw(st.integers(0, 100))])
    return path, 1, 0


@given(data=st.data())
def test_predict_gives_a_finite_probability_or_a_named_skip_for_every_slice(data, checkpoint):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = [data.draw(an_input(folder, i)) for i in range(data.draw(st.integers(1, 3)))]
        out = folder / "out"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                table = predict_files(checkpoint, [p for p, _, _ in inputs], out, batch_size=4)
            except ValueError as err:  # nothing readable: the folder is removed
                assert "could be read" in str(err) or "no image files" in str(err)
                assert not out.exists()
                return
        written = pd.read_csv(out / "predictions.csv")
        skipped = pd.DataFrame(columns=["file", "reason"], dtype=str)
        if (out / "skipped.csv").exists():
            skipped = pd.read_csv(out / "skipped.csv")
        assert written["probability"].notna().all() and np.isfinite(written["probability"]).all()
        assert written["probability"].between(0, 1).all()
        assert (written["predicted_label"] == (written["probability"] >= 0.5).astype(int)).all()
        assert len(table) == len(written)
        n_slices = sum(n for _, n, _ in inputs)
        n_volumes_empty = sum(1 for p, n, _ in inputs if n == 0)
        assert len(written) + len(skipped) == n_slices + n_volumes_empty
        named = skipped["reason"].str.contains(r"NaN|Inf|not a finite number")
        assert named.sum() == sum(bad for _, _, bad in inputs)


def test_a_model_output_that_is_not_finite_gives_a_skip_not_a_row(tmp_path, checkpoint, monkeypatch):
    for i in range(3):
        np.save(tmp_path / f"s{i}.npy", np.full((32, 32), 0.5, np.float32))
    opened = Run.open(checkpoint)
    forward = opened.model.forward

    def second_is_nan(images, **kwargs):
        outputs = forward(images, **kwargs)
        outputs["logits"][1] = float("nan")
        return outputs

    monkeypatch.setattr(opened.model, "forward", second_is_nan)
    monkeypatch.setattr(predict_module.Run, "open", staticmethod(lambda _path: opened))
    table = predict_files(checkpoint, [tmp_path / f"s{i}.npy" for i in range(3)], tmp_path / "out")
    assert table["name"].tolist() == ["s0", "s2"] and table["probability"].notna().all()
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped["file"].tolist() == [str(tmp_path / "s1.npy")]
    assert "model's output is not finite" in skipped["reason"][0]
