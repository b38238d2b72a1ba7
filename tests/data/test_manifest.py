"""Manifest validation: every problem is reported with its row number and file, all in one report."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mtlswin.data.manifest import ManifestError, read_manifest, write_skipped


@pytest.fixture()
def copy(tiny_data, tmp_path):
    """A private copy of the tiny data set and its manifest table."""
    root = tmp_path / "d"
    shutil.copytree(tiny_data.root, root)
    table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    return root, table


def _write(root, table):
    table.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _problems(path, **kw):
    with pytest.raises(ManifestError) as info:
        read_manifest(path, **kw)
    return info.value.problems, str(info.value)


def test_valid_manifest_reads(tiny_data):
    m = read_manifest(tiny_data.manifest)
    assert len(m) == 64 and m.markers == tiny_data.markers and m.skipped.empty
    assert m.table["hospital"].dtype == np.int64 and set(m.table["cue"]) <= {0, 1}


def test_missing_file(copy):
    root, table = copy
    (root / table.at[4, "image"]).unlink()
    problems, _ = _problems(_write(root, table))
    assert problems == [f"row 5 (images/00004.png): image file not found: {root / 'images/00004.png'}"]


def test_unreadable_file(copy):
    root, table = copy
    (root / table.at[2, "image"]).write_bytes(b"garbage")
    problems, _ = _problems(_write(root, table))
    assert len(problems) == 1
    assert problems[0].startswith("row 3 (images/00002.png): unreadable image file:")
    assert "00002.png" in problems[0]


def test_mask_size_differs(copy):
    root, table = copy
    row = table.index[table["mask"] != ""][0]
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / table.at[row, "mask"])
    problems, _ = _problems(_write(root, table))
    assert problems == [
        f"row {row + 1} ({table.at[row, 'image']}): mask size (16, 16) differs from image size (32, 32) "
        f"(mask {table.at[row, 'mask']})"
    ]


def test_label_not_binary(copy):
    root, table = copy
    table.loc[6, "blend_sign"] = "2"
    table.loc[9, "hypodensity"] = "yes"
    problems, _ = _problems(_write(root, table))
    assert problems == [
        "row 7 (images/00006.png): label 'blend_sign' = '2' is not 0/1",
        "row 10 (images/00009.png): label 'hypodensity' = 'yes' is not 0/1",
    ]


def test_duplicate_rows(copy):
    root, table = copy
    table = pd.concat([table, table.iloc[[3]]], ignore_index=True)
    problems, _ = _problems(_write(root, table))
    assert problems == ["row 65 (images/00003.png): duplicate of row 4 (same image)"]


def test_empty_target_cells_and_column(copy):
    root, table = copy
    table.loc[0, "hypodensity"] = ""
    problems, _ = _problems(_write(root, table))
    assert problems == ["row 1 (images/00000.png): empty target 'hypodensity'"]
    table["hypodensity"] = ""
    problems, _ = _problems(_write(root, table))
    assert problems == ["target column 'hypodensity' is empty in every row"]


def test_missing_columns(copy):
    root, table = copy
    problems, text = _problems(_write(root, table.drop(columns=["patient_id", "hypodensity"])))
    assert "missing required column 'patient_id'" in problems
    assert any(p.startswith("missing target column 'hypodensity'") for p in problems)
    assert str(root / "manifest.csv") in text


def test_all_problems_in_one_report_and_skip(copy, tmp_path):
    root, table = copy
    (root / table.at[1, "image"]).unlink()
    table.loc[10, "fluid_level"] = "5"
    table.loc[20, "hospital"] = "H2"
    path = _write(root, table)
    problems, text = _problems(path)
    assert [p.split(":")[0] for p in problems] == [
        "row 2 (images/00001.png)",
        "row 11 (images/00010.png)",
        "row 21 (images/00020.png)",
    ]
    assert "3 problem(s)" in text
    m = read_manifest(path, on_bad_row="skip")
    assert len(m) == 61 and list(m.skipped["row"]) == [2, 11, 21]
    assert 1 not in m.table.index and 2 in m.table.index  # original row numbers are kept
    out = write_skipped(m, tmp_path / "run")
    assert pd.read_csv(out)["image"].tolist() == ["images/00001.png", "images/00010.png", "images/00020.png"]


def test_bad_on_bad_row_value(tiny_data):
    with pytest.raises(ValueError, match="on_bad_row must be 'error' or 'skip', got 'ignore'"):
        read_manifest(tiny_data.manifest, on_bad_row="ignore")


def test_the_path_columns_resolve_against_the_manifest_folder(copy):
    """``image_paths`` / ``mask_paths`` (what the cache key, the datasets and the cache build read) and the
    one-row ``image_path`` / ``mask_path``: relative paths under the manifest's folder, absolute paths as they
    are, a ``#k`` slice suffix kept, None for an empty mask or a manifest without a mask column; every row in
    order, or the rows asked for, in their order."""
    root, table = copy
    table.at[1, "image"] = f"{root / table.at[1, 'image']}"  # absolute
    table.at[2, "image"] = table.at[2, "image"] + "#3"  # a slice of a volume (the path is only resolved here)
    m = read_manifest(_write(root, table), check_files=False)
    images = [v if v.startswith("/") else str(root / v) for v in table["image"]]
    images[2] = f"{root / table.at[2, 'image'][:-2]}#3"
    masks = [str(root / v) if v else None for v in table["mask"]]
    assert masks.count(None) > 0 and len(masks) - masks.count(None) > 0
    assert m.image_paths() == images and m.mask_paths() == masks
    subset = [40, 2, 1, 7, 7]
    assert m.image_paths(subset) == [images[i] for i in subset] and m.mask_paths(subset) == [masks[i] for i in subset]
    assert [m.image_path(i) for i in subset] == [images[i] for i in subset]
    assert [m.mask_path(i) for i in range(len(table))] == masks
    bare = read_manifest(_write(root, table.drop(columns="mask")), check_files=False)
    assert bare.mask_paths() == [None] * len(table) and bare.mask_paths(subset) == [None] * 5
    assert bare.mask_path(3) is None
