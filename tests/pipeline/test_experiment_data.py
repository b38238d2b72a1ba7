"""``reproduce`` finds a phantom folder drawn with the options it asks for, or refuses it by name."""

from __future__ import annotations

import dataclasses
import shutil

import pandas as pd
import pytest

from mtlswin.pipeline.experiment_data import seed_data
from mtlswin.pipeline.presets import get_preset
from mtlswin.pipeline.stages import Progress


def _data(preset, out, lines):
    return seed_data(preset, out, None, (0,), 120, Progress(lines.append), lines.append, None, 1, 0)


def test_a_phantom_drawn_with_other_options_is_refused_naming_the_file_and_the_option(tmp_path):
    demo, lines = get_preset("demo"), []
    first = _data(demo, tmp_path, lines)
    again = _data(demo, tmp_path, lines)  # the same options: found, not drawn again
    assert again == first and any("skipped (valid output exists)" in line for line in lines)
    scaled = dataclasses.replace(demo, phantom_options={**demo.phantom_options, "test_scale": 3})
    info = tmp_path / "data" / "seed-0" / "phantom" / "phantom.json"
    with pytest.raises(ValueError, match=r"phantom\.json was drawn with other phantom options") as err:
        _data(scaled, tmp_path, [])
    assert str(info) in str(err.value) and "test_scale: 2 there, 3 asked" in str(err.value)
    assert str(tmp_path / "data" / "seed-0" / "splits.csv") in str(err.value)
    with pytest.raises(ValueError, match="slices: 120 there, 130 asked"):
        seed_data(demo, tmp_path, None, (0,), 130, Progress(print), print, None, 1, 0)


def test_a_phantom_drawn_again_gets_splits_of_its_own(tmp_path):
    demo = get_preset("demo")
    first = _data(demo, tmp_path, [])[0]
    n_b = (pd.read_csv(first.splits)["split"] == "test_b").sum()
    shutil.rmtree(first.manifest.parent)  # the phantom removed, its splits.csv left behind
    single = dataclasses.replace(demo, phantom_options={**demo.phantom_options, "test_scale": 1})
    again = _data(single, tmp_path, [])[0]
    assert demo.phantom_options["test_scale"] == 2
    assert 2 * (pd.read_csv(again.splits)["split"] == "test_b").sum() == n_b
