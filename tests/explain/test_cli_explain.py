"""`mtlswin gradcam` and `mtlswin audit` on run folders built by hand on the `tiny_data` fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from mtlswin.cli import main
from mtlswin.explain.attribution import attribute
from mtlswin.explain.collect import GRID_KINDS, slice_kind
from mtlswin.explain.defaults import default_method, default_stage
from mtlswin.explain.files import load_input
from mtlswin.models import create_model, load_model, save_model, test_overrides

RUN_MODELS = ("swin", "joint_swin")  # the NHWC path and the two-encoder path


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    folders = []
    for name in RUN_MODELS:
        torch.manual_seed(0)
        model = create_model(name, **test_overrides(name))
        folder = root / name
        folder.mkdir()
        save_model(model, folder / "model.safetensors")
        data = {"manifest": str(tiny_data.manifest), "splits": str(tiny_data.splits), "target": "hypodensity"}
        config = {"model": {"name": name}, "data": {**data, "img_size": 32, "window": [40, 80]}}
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        folders.append(folder)
    return folders


def manifest_rows(tiny_data, split: str) -> pd.DataFrame:
    table = pd.read_csv(tiny_data.manifest, keep_default_na=False)
    splits = pd.read_csv(tiny_data.splits)
    return table.iloc[splits.loc[splits["split"] == split, "index"].to_numpy()]


def test_gradcam_command_writes_maps_and_overlays(runs, tiny_data, tmp_path) -> None:
    rows = manifest_rows(tiny_data, "test_a")
    rows = rows[rows["mask"] != ""].head(2)
    images = [str(tiny_data.root / p) for p in rows["image"]]
    masks = [str(tiny_data.root / p) for p in rows["mask"]]
    out = tmp_path / "cams"
    assert main(["gradcam", str(runs[0]), *images, "--out", str(out), "--mask", *masks]) == 0
    model = load_model(runs[0] / "model.safetensors")
    for image in images:
        stem = Path(image).stem
        cam = np.load(out / f"{stem}_cam.npy")
        # the family's default method at its default layer (the finest Swin stage)
        expected = attribute(model, load_input(image, 32), default_method(model), stage=default_stage(model))[0]
        np.testing.assert_allclose(cam, expected, atol=1e-6)
        assert cam.shape == (32, 32) and 0 <= cam.min() and cam.max() <= 1 + 1e-6
        with Image.open(out / f"{stem}_overlay.png") as png:
            assert png.size == (400, 400)


def test_gradcam_rejects_mismatched_masks(runs, tiny_data, tmp_path, capsys) -> None:
    image = str(tiny_data.root / "images" / "00000.png")
    assert main(["gradcam", str(runs[0]), image, "--out", str(tmp_path / "cams"), "--mask", image, image]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mtlswin gradcam: error:") and "2 masks for 1 inputs" in err and "Traceback" not in err


def test_audit_command_tables_and_grid(runs, tiny_data, tmp_path) -> None:
    out = tmp_path / "audit"
    assert main(["audit", *map(str, runs), "--split", "test_a", "--out", str(out), "--n-resamples", "200"]) == 0
    rows = manifest_rows(tiny_data, "test_a")
    masked = rows[rows["mask"] != ""]
    slices = pd.read_csv(out / "audit_slices.csv")
    assert sorted(slices["model"].unique()) == sorted(RUN_MODELS)
    for _, per_model in slices.groupby("model"):
        assert sorted(per_model["index"]) == sorted(masked.index)
        for index, area in zip(per_model["index"], per_model["mask_area"]):
            mask = np.asarray(Image.open(tiny_data.root / masked.loc[index, "mask"])) > 0
            assert area == pytest.approx(mask.mean())  # chance level = the mask file's area share
    empty = slices["energy_in_mask"].isna()  # all-zero maps (a random model may have no positive evidence)
    assert (empty == slices["pointing_hit"].isna()).all() and (~empty).any()
    assert slices.loc[~empty, "energy_in_mask"].between(0, 1).all()
    assert slices.loc[~empty, "pointing_hit"].isin([0, 1]).all()
    summary = pd.read_csv(out / "audit.csv")
    for model in RUN_MODELS:
        overall = summary[(summary["model"] == model) & (summary["group"] == "all")].iloc[0]
        per_model = slices[slices["model"] == model]
        assert overall["n"] == len(masked) and overall["n_empty_maps"] == per_model["energy_in_mask"].isna().sum()
        np.testing.assert_allclose(overall["energy_in_mask"], per_model["energy_in_mask"].mean(), equal_nan=True)
        assert overall["mask_area"] == pytest.approx(per_model["mask_area"].mean())
        groups = summary[(summary["model"] == model) & (summary["group"] != "all")]
        assert groups["n"].sum() == len(masked)  # (label, cue) groups partition the masked slices
    text = (out / "audit.md").read_text()
    assert f"| swin | {default_method('swin')} | " in text and ("| passes (rho " in text or "| **fails** (rho " in text)
    kinds = [slice_kind(r.hypodensity, r.irregular_margin + r.blend_sign + r.fluid_level) for r in rows.itertuples()]
    n_rows = sum(min(2, kinds.count(kind)) for kind in GRID_KINDS)  # --per-kind 2 slices of each kind
    with Image.open(out / "gradcam_grid.png") as grid:
        assert grid.size == (round(2.4 * 3 * 110), round(2.5 * n_rows * 110))  # 3 columns: image + 2 models


def test_cli_method_choices_match_the_library() -> None:
    from mtlswin.cli.explain import METHODS as CLI_METHODS
    from mtlswin.explain.attribution import ALL_METHODS

    assert tuple(ALL_METHODS) == CLI_METHODS
