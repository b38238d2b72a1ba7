"""Segmentation-only training (best by val IoU), then joint_swin with that run as its frozen encoder."""

from __future__ import annotations

import json

import pytest
import torch
from training_helpers import tiny_config

from mtlswin.config import load_config
from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.models import load_model
from mtlswin.training.train import train

ENCODER = {"img_size": 32, "patch_size": 2, "window_size": 2, "embed_dim": 8, "depths": [2, 2, 2],
           "num_heads": [1, 2, 2], "drop_path_rate": 0.0}  # fmt: skip


def test_swin_unet_then_joint_swin_with_its_frozen_encoder(tmp_path, tiny_data):
    seg_cfg = tiny_config(tmp_path, tiny_data, "seg", train={"epochs": 1})
    seg_cfg.write_text(seg_cfg.read_text().replace("name: mtl_swin_unet", "name: swin_unet"))
    config = load_config(seg_cfg, ["model.drop_path_rate=0.0"])
    seg_run = train(config)
    ckpt = torch.load(seg_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert any("val/iou" in str(k) for k in ckpt["callbacks"])  # segmentation-only: best by val IoU
    seg_metrics = evaluate_run(seg_run, ["test_a"], n_boot=10)["test_a"]
    assert 0.0 <= seg_metrics["iou"] <= 1.0 and "auc" not in seg_metrics
    assert "iou" in json.loads((seg_run / "metrics.json").read_text())["test_a"]

    joint_cfg = tiny_config(tmp_path, tiny_data, "joint", train={"epochs": 1})
    overrides = [f"model.{k}={json.dumps(v)}" for k, v in ENCODER.items()]
    raw = joint_cfg.read_text().replace("name: mtl_swin_unet", "name: joint_swin")
    joint_cfg.write_text(raw)
    joint = load_config(joint_cfg, [*overrides, f"model.frozen_encoder={seg_run}"])
    joint_run = train(joint)
    frozen = load_model(joint_run / "model.safetensors").frozen_encoder.state_dict()
    seg_encoder = load_model(seg_run / "model.safetensors").encoder.state_dict()
    assert frozen.keys() == seg_encoder.keys()
    for key, value in seg_encoder.items():
        assert torch.equal(frozen[key], value), f"frozen encoder changed or was not loaded: {key}"


def test_missing_frozen_encoder_path_is_a_clear_error(tmp_path, tiny_data):
    cfg = tiny_config(tmp_path, tiny_data, "joint2")
    cfg.write_text(cfg.read_text().replace("name: mtl_swin_unet", "name: joint_swin"))
    overrides = [f"model.{k}={json.dumps(v)}" for k, v in ENCODER.items()]
    with pytest.raises(ValueError, match="no weights"):
        train(load_config(cfg, [*overrides, f"model.frozen_encoder={tmp_path / 'nowhere'}"]))
