"""The registry's bookkeeping: entries, "did you mean", capabilities and the lists that error messages name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mtlswin.models import list_models
from mtlswin.models.registry import _REGISTRY, Capabilities, did_you_mean, get_entry, models_with, register_model


@dataclass
class _Config:
    width: int = 1


def test_unknown_name_names_the_closest_and_every_known_model():
    with pytest.raises(KeyError, match=r"unknown model 'swin_tny' \(did you mean 'swin_tiny'\?\); known: joint_"):
        get_entry("swin_tny")
    assert did_you_mean("lr", ["learning_rate", "weight_decay"]) == " (did you mean 'learning_rate'?)"
    assert did_you_mean("x", []) == ""


def test_registering_a_name_twice_or_without_a_dataclass_or_with_loose_capabilities_is_refused():
    with pytest.raises(ValueError, match="'swin' is registered twice"):
        register_model("swin", _Config)(lambda config: None)
    with pytest.raises(TypeError, match="must be a dataclass"):
        register_model("_not_registered", dict)(lambda config: None)
    with pytest.raises(TypeError, match="must be a Capabilities, got dict"):
        register_model("_not_registered", _Config, capabilities={"linear_head": True})(lambda config: None)
    assert "_not_registered" not in list_models()


def test_models_with_lists_the_declaring_models_in_registration_order():
    order = list(_REGISTRY)
    for capability in ("linear_head", "cam_align", "frozen_encoder", "simmim_pretrain"):
        names = models_with(capability)
        assert names == [n for n in order if getattr(get_entry(n).capabilities, capability)]
    assert models_with("linear_head") == ["swin", "swin_tiny", "mtl_swin_unet", "seg_gated_swin"]
    assert models_with("cam_align") == ["swin", "swin_tiny", "mtl_swin_unet", "seg_gated_swin"]
    assert models_with("frozen_encoder") == ["joint_swin", "joint_swin_tiny", "seg_gated_swin"]
    assert models_with("simmim_pretrain") == [
        "swin", "swin_tiny", "swin_unet", "mtl_swin_unet", "joint_swin", "joint_swin_tiny"
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown capability 'linear' \(did you mean 'linear_head'\?\)"):
        models_with("linear")


def test_models_without_declared_capabilities_have_none():
    for name in ("unet", "resnet152", "joint_learning"):
        assert get_entry(name).capabilities == Capabilities()
