"""CNN baselines (unet, resnet152, joint_learning) and their pretrained-weight loading."""

from __future__ import annotations

import socket
import time

import pytest
import timm
import torch
from safetensors.torch import save_file

from mtlswin.models import baselines, create_model, test_overrides
from mtlswin.models.conversion import timm_hub
from mtlswin.models.conversion.files import read_state_dict

BASELINES = ("unet", "resnet152", "joint_learning")
EXPECTED = {"unet": {"seg"}, "resnet152": {"logits"}, "joint_learning": {"logits", "seg"}}


def tiny(name: str, **overrides) -> torch.nn.Module:
    return create_model(name, **{**test_overrides(name), **overrides})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_finite(name, size):
    model = tiny(name).eval()
    out = model(torch.rand(2, 1, size, size))
    assert set(out) == EXPECTED[name]
    if "logits" in out:
        assert out["logits"].shape == (2, 2)
    if "seg" in out:
        assert out["seg"].shape == (2, 2, size, size)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert model.model_name == name
    assert {"logits": "cls", "seg": "seg"}.keys() >= out.keys()
    assert set(model.tasks) == {{"logits": "cls", "seg": "seg"}[k] for k in out}


@pytest.mark.parametrize("name", BASELINES)
def test_every_parameter_gets_a_gradient(name):
    model = tiny(name).train()
    out = model(torch.rand(2, 1, 32, 32))
    sum(v.float().pow(2).mean() for v in out.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    assert sum(p.grad.abs().sum().item() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", ["resnet152", "joint_learning"])
def test_cam_target_layer_is_the_pooled_feature_map(name):
    model = tiny(name).eval()
    (layer,) = model.cam_target_layers()
    assert model.cam_reshape is None
    seen = []
    handle = layer.register_forward_hook(lambda _m, _i, o: seen.append(o))
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        model(x)
        handle.remove()
        # The hooked output must be exactly the deepest feature map the classifier pools.
        deepest = model.backbone.forward_features(x) if name == "resnet152" else model.net.encoder(x)[-1]
    assert len(seen) == 1 and seen[0].ndim == 4
    torch.testing.assert_close(seen[0], deepest)
    assert seen[0].shape[-2:] == (2, 2)  # stride 32


def test_unet_rejects_sizes_not_divisible_by_32():
    model = tiny("unet")
    with pytest.raises(ValueError, match=r"divisible by 32.*got 40x64.*H 32 or 64, W 64"):
        model(torch.rand(1, 1, 40, 64))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*\(1, 3, 32, 32\)"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"img_size 100.*96 or 128"):
        create_model("joint_learning", img_size=100)
    with pytest.raises(ValueError, match=r"img_size 20 .*multiple of 8"):
        create_model("unet", img_size=20, encoder_depth=3, decoder_channels=(16, 8, 8))


def test_bad_options_rejected():
    with pytest.raises(ValueError, match=r"decoder_channels \(32, 16\).*5"):
        create_model("unet", decoder_channels=(32, 16))
    with pytest.raises(ValueError, match="not a timm ResNet"):
        create_model("resnet152", arch="test_efficientnet")
    with pytest.raises(ValueError, match="cls_dropout"):
        create_model("joint_learning", cls_dropout=1.5)


def test_paper_size_resnet152_has_the_resnet152_body():
    # timm resnet152 has 60,192,808 parameters with 3 input channels and 1000 classes.
    model = create_model("resnet152")
    n = sum(p.numel() for p in model.parameters())
    assert n == 60_192_808 - 2 * 64 * 7 * 7 - 1000 * 2048 - 1000 + 2 * 2048 + 2


# --- pretrained: timm, offline --------------------------------------------------------------------


@pytest.fixture
def no_cache(monkeypatch):
    monkeypatch.setattr(timm_hub, "_cached_hub_file", lambda _hub_id: None)


def test_timm_offline_env_fails_at_once_naming_local_file(monkeypatch, no_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"pretrained: /path/to/weights\.pth") as info:
        tiny("resnet152", pretrained="timm")
    assert time.perf_counter() - start < 5.0
    assert "test_resnet" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)


def test_timm_unreachable_host_fails_within_timeout(monkeypatch, no_cache):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TIMM_OFFLINE", raising=False)

    def hanging_connect(*_args, **_kwargs):  # a DNS lookup / connect that never answers in time
        time.sleep(3.0)
        raise OSError("unreachable")

    monkeypatch.setattr(socket, "create_connection", hanging_connect)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"cannot be reached.*pretrained: /path/to/weights\.pth"):
        timm_hub.timm_pretrained_state_dict("resnet152", timeout=0.3)
    assert time.perf_counter() - start < 1.5


def test_timm_online_path_loads_timm_weights(monkeypatch, no_cache):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TIMM_OFFLINE", raising=False)
    ref = timm.create_model("test_resnet", in_chans=3, num_classes=1000)
    calls = []
    monkeypatch.setattr(timm_hub, "hub_reachable", lambda host, **_kw: calls.append(host) or True)
    monkeypatch.setattr(timm_hub, "_timm_weights", lambda name, _file: calls.append(name) or ref.state_dict())
    model = tiny("resnet152", pretrained="timm")
    assert calls == ["huggingface.co", "test_resnet"]
    report = model.load_report
    assert report.source == "timm:test_resnet"
    assert sorted(report.ignored) == ["fc.bias", "fc.weight"]  # 1000-class head left out
    assert len(report.loaded) == len(model.backbone.state_dict()) - 2
    torch.testing.assert_close(model.backbone.conv1[0].weight, ref.conv1[0].weight.sum(1, keepdim=True))


# --- pretrained: local files ------------------------------------------------------------------------


def test_local_pth_with_rgb_first_conv_gives_the_rgb_models_outputs(tmp_path):
    ref = timm.create_model("test_resnet", in_chans=3, num_classes=2).eval()
    path = tmp_path / "weights.pth"
    torch.save({"model": ref.state_dict(), "epoch": 3}, path)
    model = tiny("resnet152", pretrained=str(path)).eval()
    assert model.load_report.missing == [] and model.load_report.ignored == {}
    assert model.load_report.summed_rgb == ["conv1.0.weight"]
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["logits"], ref(x.repeat(1, 3, 1, 1)), atol=1e-5, rtol=1e-5)


def test_local_encoder_only_safetensors_into_unet(tmp_path):
    ref = timm.create_model("resnet18", in_chans=3, num_classes=1000).eval()  # ImageNet classifier layout
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    model = tiny("unet", encoder_name="resnet18", pretrained=str(path)).eval()  # smp's own ResNet encoder
    assert sorted(model.load_report.ignored) == ["fc.bias", "fc.weight"]
    assert len(model.load_report.loaded) == len(model.net.encoder.state_dict())
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        ours = model.net.encoder(x)[-1]
        torch.testing.assert_close(ours, ref.forward_features(x.repeat(1, 3, 1, 1)), atol=1e-5, rtol=1e-4)


def test_full_joint_learning_state_dict_round_trip(tmp_path):
    source = tiny("joint_learning").eval()
    path = tmp_path / "joint.pt"
    torch.save({"state_dict": source.state_dict()}, path)  # keys "net.encoder.model...", "net.decoder..."
    model = tiny("joint_learning", pretrained=str(path)).eval()
    assert len(model.load_report.loaded) == len(source.state_dict())
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a, b = source(x), model(x)
    torch.testing.assert_close(a["logits"], b["logits"])
    torch.testing.assert_close(a["seg"], b["seg"])


def test_mismatched_state_dict_raises_listing_keys(tmp_path):
    sd = timm.create_model("test_resnet", in_chans=3, num_classes=2).state_dict()
    sd.pop("layer4.0.conv1.weight")
    sd["extra.weight"] = torch.zeros(3)
    sd["layer1.0.bn1.weight"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="refusing a partial load") as info:
        tiny("resnet152", pretrained=str(path))
    message = str(info.value)
    assert "1 missing keys [layer4.0.conv1.weight]" in message
    assert "1 unexpected keys [extra.weight]" in message
    assert "layer1.0.bn1.weight: file (7,) vs model (" in message
    assert str(path) in message


def test_read_state_dict_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.pth"):
        read_state_dict(tmp_path / "nothere.pth")
    bad_suffix = tmp_path / "w.npz"
    bad_suffix.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"w\.npz.*unknown suffix"):
        read_state_dict(bad_suffix)
    pickled = tmp_path / "object.pth"
    torch.save({"w": torch.zeros(1), "fn": baselines.UNetConfig()}, pickled)
    with pytest.raises(ValueError, match=r"object\.pth.*weights_only=True"):
        read_state_dict(pickled)
    mixed = tmp_path / "mixed.pt"
    torch.save({"w": torch.zeros(1), "epoch": 3}, mixed)
    with pytest.raises(ValueError, match=r"mixed\.pt.*not tensors.*epoch"):
        read_state_dict(mixed)


def test_timm_weights_in_local_cache_are_used_offline(monkeypatch, tmp_path):
    ref = timm.create_model("test_resnet", in_chans=3, num_classes=1000)
    cached = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(cached))
    monkeypatch.setattr(timm_hub, "_cached_hub_file", lambda hub_id: str(cached) if "test_resnet" in hub_id else None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    state_dict = timm_hub.timm_pretrained_state_dict("test_resnet")  # timm's own loader, reading the file
    assert state_dict.keys() == ref.state_dict().keys()
    torch.testing.assert_close(state_dict["layer4.0.conv1.weight"], ref.state_dict()["layer4.0.conv1.weight"])


@pytest.mark.parametrize(
    ("name", "timm_name", "n_head_keys"),
    [("unet", "resnet34", 2), ("joint_learning", "efficientnet_b3", 2 + 1 + 5)],  # fc | classifier + conv_head + bn2
)
def test_default_encoders_take_timm_imagenet_weights_key_for_key(monkeypatch, no_cache, name, timm_name, n_head_keys):
    # What `pretrained: timm` loads at paper size, with random weights instead of a download.
    ref = timm.create_model(timm_name, in_chans=3, num_classes=1000)
    monkeypatch.setattr(timm_hub, "hub_reachable", lambda *_a, **_kw: True)
    monkeypatch.setattr(timm_hub, "_timm_weights", lambda *_a: ref.state_dict())
    model = create_model(name, pretrained="timm")
    encoder = baselines._encoder_module(model.net)
    assert model.load_report.source == f"timm:{timm_name}"
    assert len(model.load_report.ignored) == n_head_keys
    assert len(model.load_report.loaded) == len(encoder.state_dict())
    first = model.load_report.summed_rgb[0]
    torch.testing.assert_close(encoder.state_dict()[first], ref.state_dict()[first].sum(1, keepdim=True))
