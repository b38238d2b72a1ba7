"""Run folders written before the methods had their own settings: read in today's layout, same digest."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from mtlswin.config import load_config, save_config
from mtlswin.methods.cam_align import CamAlignSettings
from mtlswin.methods.groupdro import GroupDROSettings
from mtlswin.methods.rrr import RRRSettings
from mtlswin.runs import config_digest, read_run_config

# The train section that the earlier flat layout wrote for each shipped demo method row, and the digest
# (RUN/config.sha256) that the code of that layout computed for the row's config (commit 4513e92).
LEGACY = {
    "swin_rrr": (
        {"guidance": "rrr", "guidance_weight": None, "guidance_dilation": 2, "objective": "erm", "groupdro_eta": 0.01},
        "3504cf4fea039fed79c24e2e79d2f605537d4054ce78549dee50bc87eef802d8",
        RRRSettings(weight=10.0, dilation=2),
        None,
    ),
    "swin_cam_align": (
        {"guidance": "cam_align", "guidance_weight": None, "guidance_dilation": 2, "objective": "erm",
         "groupdro_eta": 0.01},
        "01a628224b083e857bd86f0e67c5233a0725c5b86ef52d6b1529628333d449a3",
        CamAlignSettings(weight=1.0),
        None,
    ),
    "swin_groupdro": (
        {"guidance": "none", "guidance_weight": None, "guidance_dilation": 2, "objective": "groupdro",
         "groupdro_eta": 0.01},
        "2667972cc3a05a441057decd046555515c4e81660806b20f6928444d93e852d9",
        None,
        GroupDROSettings(eta=0.01),
    ),
}  # fmt: skip


def _shipped(row: str) -> Path:
    return Path(str(resources.files("mtlswin") / "configs" / "demo" / f"{row}.yaml"))


def _legacy_run_folder(tmp_path: Path, row: str) -> Path:
    """A run folder whose config.yaml is in the earlier layout (today's file with the flat method keys)."""
    run = tmp_path / row
    run.mkdir()
    save_config(load_config(_shipped(row)), run / "config.yaml")
    raw = yaml.safe_load((run / "config.yaml").read_text())
    train = {k: v for k, v in raw["train"].items() if k not in ("guidance", "objective")}
    raw["train"] = {**train, **LEGACY[row][0]}
    (run / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return run


@pytest.mark.parametrize("row", sorted(LEGACY))
def test_a_run_folder_of_the_flat_layout_is_read_with_the_methods_settings(tmp_path, row):
    _, _, guidance, objective = LEGACY[row]
    config = read_run_config(_legacy_run_folder(tmp_path, row))
    assert config.train.guidance == guidance
    assert config.train.objective == objective


@pytest.mark.parametrize("row", sorted(LEGACY))
def test_the_digest_is_the_one_the_flat_layout_gave(row):
    # reproduce compares it with RUN/config.sha256: equal digests keep a finished run of an earlier version
    assert config_digest(load_config(_shipped(row))) == LEGACY[row][1]


def test_a_weight_other_than_the_default_changes_the_digest():
    base = config_digest(load_config(_shipped("swin_rrr")))
    assert config_digest(load_config(_shipped("swin_rrr"), ["train.guidance.weight=5"])) != base
    assert config_digest(load_config(_shipped("swin_rrr"), ["train.guidance.dilation=3"])) != base


def test_a_config_file_with_the_flat_keys_is_still_refused(tmp_path):
    run = _legacy_run_folder(tmp_path, "swin_rrr")
    with pytest.raises(ValueError, match=r"train\.guidance_weight was replaced by train\.guidance: \{name: rrr"):
        load_config(run / "config.yaml")
