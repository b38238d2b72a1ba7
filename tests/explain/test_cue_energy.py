"""Energy in the hematoma mask and in the cue region as multiples of chance, on hand-made maps and twins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlswin.explain.audit import CUE_THRESHOLD, cue_regions, slice_scores, summarise, summary_markdown


def test_cue_region_is_where_slice_and_twin_differ_by_more_than_one_grey_level() -> None:
    images = np.zeros((2, 4, 4))
    twins = images.copy()
    twins[0, 1, 2] = 0.5
    twins[0, 3, 3] = CUE_THRESHOLD / 2  # below one grey level: interpolation noise, not the cue
    twins[1] = np.nan  # no twin
    regions = cue_regions(images, twins)
    assert regions[0].sum() == 1 and regions[0, 1, 2]
    assert not regions[1].any()
    with pytest.raises(ValueError, match="one shape"):
        cue_regions(images, twins[:, :2])


def test_x_chance_numbers_equal_hand_computed_values() -> None:
    cams = np.zeros((3, 4, 4))
    masks = np.zeros((3, 4, 4), dtype=bool)
    cues = np.zeros((3, 4, 4), dtype=bool)
    # 0: all energy on one mask pixel; mask 2 pixels (area 1/8) -> x chance 8; cue region elsewhere -> 0
    cams[0, 0, 0] = 1.0
    masks[0, 0, :2] = True
    cues[0, 3, :] = True
    # 1: uniform map: both ratios are exactly 1 (chance)
    cams[1] = 1.0
    masks[1, :2, :2] = True
    cues[1, 2:, :] = True
    # 2: half the energy on a cue region of 4 pixels (area 1/4) -> share .5, x chance 2; no twin -> NaN
    cams[2, 0, 0], cams[2, 3, 3] = 1.0, 1.0
    masks[2, 3, 3] = True
    cues[2, 0, :] = True
    scores = slice_scores(cams, masks, cues)
    np.testing.assert_allclose(scores["mask_x_chance"], [8.0, 1.0, 0.5 * 16])
    np.testing.assert_allclose(scores["energy_in_cue"], [0.0, 0.5, 0.5])
    np.testing.assert_allclose(scores["cue_area"], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(scores["cue_x_chance"], [0.0, 1.0, 2.0])
    cues[2] = False  # a slice without a twin has no cue numbers, not a zero
    again = slice_scores(cams, masks, cues)
    assert np.isnan(again["cue_x_chance"][2]) and np.isnan(again["energy_in_cue"][2])
    without = slice_scores(cams, masks)
    assert np.isnan(without["cue_x_chance"]).all()
    np.testing.assert_allclose(without["mask_x_chance"], scores["mask_x_chance"])


def test_summary_reports_both_ratios_and_reads_an_older_table_without_them() -> None:
    scores = pd.DataFrame({"model": ["a", "a"], "label": [1, 1], "cue": [0, 0], "patient_id": ["p", "q"],
                           "energy_in_mask": [0.5, 0.25], "pointing_hit": [1.0, 0.0], "mask_area": [0.25, 0.25]})  # fmt: skip
    summary = summarise(scores, n_resamples=50)
    assert summary.loc[0, "mask_x_chance"] == pytest.approx((2.0 + 1.0) / 2)
    assert np.isnan(summary.loc[0, "cue_x_chance"])
    text = summary_markdown(summary.assign(method="hirescam", sanity_spearman=0.7, sanity_ssim=0.2,
                                           sanity_pass=False), "test_a")  # fmt: skip
    assert "| a | hirescam | **fails** (rho 0.70, SSIM 0.20) | all | 2 |" in text
    assert "1.500 [" in text


def test_audit_takes_the_cue_region_from_the_twins(tiny_data, tmp_path) -> None:
    """Twins of the tiny data set: the same image with its cue square (top-left, 3x3 at 32 px) flipped. The audit's
    cue region of every slice is that square, and its numbers are the map's energy there."""
    import torch
    import yaml
    from PIL import Image

    from mtlswin.explain.collect import collect_split
    from mtlswin.models import create_model, save_model, test_overrides
    from mtlswin.runs import Run

    table = pd.read_csv(tiny_data.manifest, keep_default_na=False)
    (tmp_path / "twins").mkdir()
    q = max(2, 32 // 10)
    square = np.zeros((32, 32), dtype=bool)
    square[1 : 1 + q, 1 : 1 + q] = True
    twins = []
    for row in table.itertuples():
        image = np.array(Image.open(tiny_data.root / row.image))
        image[square] = 0 if row.cue else 255  # the cue flipped, nothing else
        name = tmp_path / "twins" / Path(row.image).name
        Image.fromarray(image).save(name)
        twins.append(str(name))
    manifest = tmp_path / "manifest.csv"
    table.assign(image=[str(tiny_data.root / p) for p in table["image"]],
                 mask=[str(tiny_data.root / p) if p else "" for p in table["mask"]], twin=twins).to_csv(manifest,
                                                                                                       index=False)  # fmt: skip
    torch.manual_seed(0)
    model = create_model("swin", **test_overrides("swin"))
    folder = tmp_path / "run"
    folder.mkdir()
    save_model(model, folder / "model.safetensors")
    data = {"manifest": str(manifest), "splits": str(tiny_data.splits), "target": "hypodensity"}
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "swin"},
                                                        "data": {**data, "img_size": 32, "window": [40, 80]}}))  # fmt: skip
    result = collect_split(Run.open(folder), "test_a", method="input_x_gradient", sanity=False)
    scores = result.scores
    assert len(scores) > 0 and scores["cue_area"].to_numpy() == pytest.approx(square.mean())
    assert result.method == "input_x_gradient" and result.sanity == {}
    # recompute one slice's cue energy from its map
    from mtlswin.explain.attribution import attribute

    run = Run.open(folder)
    dm = run.datamodule(num_workers=0)
    batch = next(iter(dm.dataloader("test_a", shuffle=False, augment=False)))
    first = int(scores["index"].iloc[0])
    i = int(np.flatnonzero(batch["index"].numpy() == first)[0])
    cam = attribute(run.model, batch["image"][i : i + 1], "input_x_gradient")[0]
    assert cam.sum() > 0
    assert scores["energy_in_cue"].iloc[0] == pytest.approx((cam * square).sum() / cam.sum(), rel=1e-5)
    assert scores["cue_x_chance"].iloc[0] == pytest.approx(scores["energy_in_cue"].iloc[0] / square.mean())
