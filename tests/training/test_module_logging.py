"""MTLModule logs each loss part with the right weight: seg by the slices that have a mask."""

from __future__ import annotations

import pytest
import torch

from mtlswin.config import TrainConfig
from mtlswin.models import create_model, test_overrides
from mtlswin.training.module import MTLModule


def _batch(has_mask: list[bool]) -> dict[str, torch.Tensor]:
    n = len(has_mask)
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(n, 32, 32, generator=g) > 0.7).long() * torch.tensor(has_mask).view(n, 1, 1)
    return {
        "image": torch.rand(n, 1, 32, 32, generator=g),
        "label": torch.tensor([0, 1] * (n // 2)),
        "mask": mask,
        "has_mask": torch.tensor(has_mask),
    }


@pytest.fixture
def logged(monkeypatch):
    torch.manual_seed(0)
    module = MTLModule(create_model("mtl_swin_unet", **test_overrides("mtl_swin_unet")), TrainConfig(seed=3))
    calls: dict[str, tuple[float, int]] = {}
    monkeypatch.setattr(
        module, "log", lambda name, value, **kw: calls.__setitem__(name, (float(value), kw["batch_size"]))
    )
    return module, calls


def test_module_takes_the_train_config_dataclass(logged):
    module, _ = logged
    assert module.train_cfg.seed == 3 and module.train_cfg.threshold == 0.5
    assert module.loss_fn.weights == {"cls": 0.3, "seg": 0.4, "rec": 0.4}


def test_seg_loss_is_weighted_by_masked_slices(logged):
    module, calls = logged
    module._step(_batch([True, False, False, True]), "train")
    assert calls["train/seg"][1] == 2 and calls["train/seg"][0] > 0  # 2 masked slices of 4
    assert calls["train/cls"][1] == 4 and calls["train/rec"][1] == 4


def test_a_train_batch_without_masks_logs_no_seg_loss(logged):
    module, calls = logged
    module._step(_batch([False, False, False, False]), "train")
    assert "train/seg" not in calls and calls["train/cls"][1] == 4  # not a 0 with weight 4


def test_a_validation_batch_without_masks_logs_seg_with_weight_zero(logged):
    module, calls = logged
    module._step(_batch([False, False]), "val")
    assert calls["val/seg"] == (0.0, 0)  # every rank logs the key; weight 0 leaves the epoch mean unchanged
