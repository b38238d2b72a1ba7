"""Every registered model, at its tiny config: outputs, gradients, frozen parts, save/load, Grad-CAM hooks."""

from __future__ import annotations

import pytest
import torch

from mtlswin.models import create_model, list_models, load_model, save_model, test_overrides

NAMES = list_models()
SWIN_MODELS = ("swin", "swin_tiny", "swin_unet", "mtl_swin_unet", "joint_swin", "joint_swin_tiny")
OUTPUT_OF_TASK = {"cls": "logits", "seg": "seg", "rec": "rec"}


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **test_overrides(name))


def _image(model: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    size = getattr(model.config, "img_size", 32)
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(1))


def _expected_shapes(model: torch.nn.Module, batch: int) -> dict[str, tuple]:
    cfg, size = model.config, getattr(model.config, "img_size", 32)
    shapes = {
        "cls": (batch, getattr(cfg, "n_classes", 2)),
        "seg": (batch, getattr(cfg, "n_seg_classes", 2), size, size),
        "rec": (batch, 1, size, size),
    }
    return {OUTPUT_OF_TASK[t]: shapes[t] for t in model.tasks}


def test_registry_holds_every_model_of_the_contract():
    contract = {"swin_unet", "unet", "resnet152", "swin", "swin_tiny", "joint_learning", "joint_swin"}
    contract |= {"joint_swin_tiny", "mtl_swin_unet"}
    assert contract <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_have_the_task_keys_shapes_and_are_finite(name):
    model = _tiny(name).eval()
    assert model.model_name == name
    assert set(model.tasks) <= {"cls", "seg", "rec"} and model.tasks
    with torch.no_grad():
        out = model(_image(model, batch=3))
    assert {k: tuple(v.shape) for k, v in out.items()} == _expected_shapes(model, 3)
    for key, value in out.items():
        assert value.dtype == torch.float32, key
        assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_parameter_gets_a_gradient_and_no_frozen_one_does(name):
    model = _tiny(name).train()
    out = model(_image(model))
    g = torch.Generator().manual_seed(2)
    loss = sum((v * torch.randn(v.shape, generator=g)).sum() for v in out.values())
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    assert [n for n, p in trainable if p.grad is None] == []
    assert [n for n, p in trainable if not torch.isfinite(p.grad).all()] == []
    if name in SWIN_MODELS:  # (CNNs may zero-init the last norm of residual branches: zero gradients at init)
        assert [n for n, p in trainable if not p.grad.abs().sum() > 0] == []
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert frozen_with_grad == []


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("joint_swin")])
def test_joint_swin_frozen_encoder_is_frozen_and_stays_in_eval_mode(name):
    model = _tiny(name)
    frozen = list(model.frozen_encoder.parameters())
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in model.encoder.parameters())
    model.train()
    assert model.training and model.encoder.training
    assert not any(m.training for m in model.frozen_encoder.modules())
    # eval-mode frozen encoder: two train-mode forwards give the same frozen features
    x = _image(model)
    assert torch.equal(model.frozen_encoder(x).bottleneck, model.frozen_encoder(x).bottleneck)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_gives_identical_outputs(name, tmp_path):
    model = _tiny(name).eval()
    path = save_model(model, tmp_path / f"{name}.safetensors")
    loaded = load_model(path).eval()
    assert loaded.model_name == name and loaded.config == model.config
    x = _image(model)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", [n for n in NAMES if n != "unet" and n != "swin_unet"])
def test_classifiers_expose_grad_cam_layers_that_see_the_image(name):
    model = _tiny(name).eval()
    if "cls" not in model.tasks:
        pytest.skip(f"{name} has no classification output")
    layers = model.cam_target_layers()
    owned = {id(m) for m in model.modules()}
    assert layers and all(id(layer) in owned for layer in layers)
    seen = []
    handle = layers[0].register_forward_hook(lambda mod, inp, out: seen.append(out))
    model(_image(model))
    handle.remove()
    act = seen[0] if model.cam_reshape is None else model.cam_reshape(seen[0])
    assert act.ndim == 4 and act.shape[0] == 2  # NCHW map for Grad-CAM
    assert act.requires_grad


@pytest.mark.parametrize("name", ["swin_unet", "unet"])
def test_segmentation_only_models_have_no_cam_target(name):
    if name not in NAMES:
        pytest.fail(f"{name} is not registered")
    assert "cls" not in _tiny(name).tasks
    assert not hasattr(_tiny(name), "cam_target_layers")
