"""`mtlswin split | prepare | import | validate`."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from mtlswin.cli import main


def test_split_prints_table_and_writes_csv(tiny_data, tmp_path, capsys):
    out = tmp_path / "s.csv"
    args = ["split", str(tiny_data.manifest), "--out", str(out), "--test-a-fraction", "0.25"]
    assert main([*args, "--test-b-hospitals", "5-6", "--protocol", "patient", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:4] == ["split", "slices", "positive", "rate"]
    splits = pd.read_csv(out)
    assert set(splits["split"]) == {"train", "val", "test_a", "test_b"}
    counts = splits["split"].value_counts()
    row_b = next(line for line in text.splitlines() if line.startswith("test_b"))
    assert int(row_b.split()[1]) == counts["test_b"]
    assert main([*args, "--test-b-hospitals", "9-11"]) == 1  # no slices there: a clear error, not a traceback
    assert "test B needs" in capsys.readouterr().err


def test_prepare_builds_once(tiny_data, tmp_path, capsys):
    args = ["prepare", str(tiny_data.manifest), "--size", "40", "--cache-dir", str(tmp_path), "--workers", "0"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same cache folder reused
    folder = first.split()[1].rstrip(":")
    images = np.load(f"{folder}/images.npy", mmap_mode="r")
    assert images.shape == (64, 40, 40) and images.dtype == np.uint8


def test_validate_reports_all_and_skips(tiny_data, tmp_path, capsys):
    root = tmp_path / "d"
    shutil.copytree(tiny_data.root, root)
    table = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    table.loc[[3, 8], "hypodensity"] = "2"
    table.to_csv(root / "manifest.csv", index=False)
    assert main(["validate", str(root / "manifest.csv")]) == 1
    err = capsys.readouterr().err
    assert "row 4 (images/00003.png)" in err and "row 9 (images/00008.png)" in err
    assert main(["validate", str(root / "manifest.csv"), "--on-bad-row", "skip", "--skipped-dir", str(tmp_path)]) == 0
    assert pd.read_csv(tmp_path / "skipped_rows.csv")["row"].tolist() == [4, 9]


def test_import_authors_npz(tmp_path, capsys):
    n = 3
    np.savez(tmp_path / "train.npz", image=np.zeros((n, 8, 8), np.uint8), label=np.ones(n),
             mask=np.zeros((n, 8, 8), np.uint8), mask_exist=np.zeros(n))  # fmt: skip
    assert main(["import", "authors-npz", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "3 slices" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "out" / "manifest.csv")) == 3
