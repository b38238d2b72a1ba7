"""The Swin encoder, the Swin-Unet decoder, the size check, and the multitask / joint wiring."""

from __future__ import annotations

import re

import pytest
import torch
from timm.models.swin_transformer import SwinTransformer

from mtlswin.models import create_model, save_model, test_overrides
from mtlswin.models.decoder import FinalPatchExpand, PatchExpand, SwinUnetDecoder, expand_tokens
from mtlswin.models.encoder import SwinEncoder
from mtlswin.models.factory import build_config
from mtlswin.models.sizes import check_swin_sizes

TINY = {"img_size": 32, "patch_size": 2, "window_size": 2, "embed_dim": 8, "depths": (2, 2, 2), "num_heads": (1, 2, 2)}


def _x(size: int = 32, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(0))


def test_encoder_skips_are_the_tokens_before_each_stage_and_the_bottleneck_is_normed():
    torch.manual_seed(0)
    enc = SwinEncoder(**TINY, drop_path_rate=0.0).eval()
    assert enc.resolutions == [16, 8, 4] and enc.feature_dims == [8, 16, 32] and enc.num_features == 32
    x = _x()
    with torch.no_grad():  # like the recomputation below: SDPA may pick another CPU kernel when grad is on
        feats = enc(x)
    assert [tuple(s.shape) for s in feats.skips] == [(2, 16, 16, 8), (2, 8, 8, 16), (2, 4, 4, 32)]
    assert tuple(feats.bottleneck.shape) == (2, 4, 4, 32)
    with torch.no_grad():
        t = enc.patch_embed(x)
        assert torch.equal(feats.skips[0], t)
        for i, stage in enumerate(enc.stages):
            t = stage.downsample(t)
            assert torch.equal(feats.skips[i], t)
            t = stage.blocks(t)
        assert torch.equal(feats.bottleneck, enc.norm(t))


def test_encoder_equals_timm_swin_forward_features_with_the_same_weights():
    torch.manual_seed(0)
    enc = SwinEncoder(**TINY, drop_path_rate=0.0).eval()
    ref = SwinTransformer(in_chans=1, num_classes=0, drop_path_rate=0.0, **TINY).eval()
    state = {re.sub(r"^stages\.", "layers.", k): v for k, v in enc.state_dict().items()}
    result = ref.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = _x()
    with torch.no_grad():
        assert torch.allclose(enc(x).bottleneck, ref.forward_features(x), atol=1e-6)


@pytest.mark.parametrize(
    ("img", "patch", "window", "depths", "message"),
    [
        (200, 4, 7, (2, 2, 2, 2), "img_size 200 gives stage resolutions 50,25,12.5,6.25 .*window 7; use img_size 224"),
        (300, 4, 7, (2, 2, 2, 2), "img_size 300 gives .*use img_size 224 or 448"),
        (36, 2, 4, (2, 2), "img_size 36 gives stage resolutions 18,9 .*window 4; use img_size 32 or 48"),
    ],
)
def test_bad_sizes_are_rejected_naming_sizes_that_work(img, patch, window, depths, message):
    with pytest.raises(ValueError, match=message):
        check_swin_sizes(img, patch, window, depths)


def test_other_bad_knobs_are_rejected_clearly():
    with pytest.raises(ValueError, match=r"num_heads \(1, 2\) has 2 entries but depths \(2, 2, 2\)"):
        check_swin_sizes(32, 2, 2, (2, 2, 2), (1, 2), 8)
    with pytest.raises(
        ValueError, match="stage 1 has width embed_dim\\*2\\*\\*1 = 16, not divisible by num_heads\\[1\\] = 3"
    ):
        check_swin_sizes(32, 2, 2, (2, 2), (1, 3), 8)
    assert check_swin_sizes(224, 4, 7, (2, 2, 2, 2), (3, 6, 12, 24), 96) == [56, 28, 14, 7]


@pytest.mark.parametrize("name", ["swin", "swin_tiny", "swin_unet", "mtl_swin_unet", "joint_swin", "joint_swin_tiny"])
def test_every_swin_model_rejects_a_bad_size_with_the_message(name):
    tiny = test_overrides(name)
    bad = tiny["img_size"] + 4
    with pytest.raises(ValueError, match=f"img_size {bad} gives stage resolutions .* use img_size 32"):
        create_model(name, **{**tiny, "img_size": bad})


def test_patch_expand_moves_channel_groups_into_2x2_pixels_in_einops_order():
    x = torch.arange(2 * 3 * 3 * 8, dtype=torch.float32).view(2, 3, 3, 8)
    y = expand_tokens(x, 2)
    assert y.shape == (2, 6, 6, 2)
    for p1 in range(2):
        for p2 in range(2):  # 'b h w (p1 p2 c) -> b (h p1) (w p2) c'
            assert torch.equal(y[:, p1::2, p2::2, :], x[..., (2 * p1 + p2) * 2 : (2 * p1 + p2 + 1) * 2])
    assert PatchExpand(8)(x).shape == (2, 6, 6, 4)
    assert FinalPatchExpand(8, 4)(x).shape == (2, 12, 12, 8)


def test_decoder_maps_encoder_features_back_to_pixels_for_any_stage_count():
    for depths, heads in (((2, 2), (1, 2)), ((2, 2, 2), (1, 2, 2)), ((1, 1, 1, 1), (1, 1, 2, 2))):
        cfg = {**TINY, "img_size": 64 if len(depths) == 4 else 32, "depths": depths, "num_heads": heads}
        enc, dec = SwinEncoder(**cfg), SwinUnetDecoder(**cfg)
        assert len(dec.layers_up) == len(depths) and len(dec.concat_back_dim) == len(depths)
        out = dec(enc(_x(cfg["img_size"])))
        assert out.shape == (2, 8, cfg["img_size"], cfg["img_size"])
    with pytest.raises(ValueError, match="decoder_depths \\(1,\\) must hold 2 positive block counts"):
        SwinUnetDecoder(**TINY, decoder_depths=(1,))
    dec = SwinUnetDecoder(**TINY, decoder_depths=(3, 1))  # layers_up order: level 1 first, then level 0
    assert [len(dec.layers_up[i].blocks) for i in (1, 2)] == [3, 1]


def _count_calls(modules):
    counts = dict.fromkeys(modules, 0)
    handles = []
    for name, module in modules.items():
        handles.append(module.register_forward_hook(lambda *a, n=name: counts.__setitem__(n, counts[n] + 1)))
    return counts, handles


@pytest.mark.parametrize("tasks", ["cls+seg", "cls+rec", "cls+seg+rec"])
def test_shared_decoder_runs_once_per_forward_and_feeds_both_heads(tasks):
    model = create_model("mtl_swin_unet", **test_overrides("mtl_swin_unet"), tasks=tasks, decoder="shared").eval()
    pixel = [t for t in ("seg", "rec") if t in tasks]
    assert list(model.decoders) == ["+".join(pixel)]
    counts, _ = _count_calls({"decoder": model.decoders["+".join(pixel)], "encoder": model.encoder})
    out = model(_x())
    assert counts == {"decoder": 1, "encoder": 1}
    assert set(out) == {"logits", *pixel}


def test_separate_decoders_run_once_each_and_equal_shared_when_weights_are_equal():
    shared = create_model("mtl_swin_unet", **test_overrides("mtl_swin_unet"), decoder="shared").eval()
    separate = create_model("mtl_swin_unet", **test_overrides("mtl_swin_unet"), decoder="separate").eval()
    assert list(separate.decoders) == ["seg", "rec"]
    state = {}
    for k, v in shared.state_dict().items():
        if k.startswith("decoders.seg+rec."):
            state[k.replace("seg+rec", "seg")] = v
            state[k.replace("seg+rec", "rec")] = v
        else:
            state[k] = v
    separate.load_state_dict(state, strict=True)
    counts, _ = _count_calls(dict(separate.decoders))
    x = _x()
    with torch.no_grad():
        a, b = shared(x), separate(x)
    assert counts == {"seg": 1, "rec": 1}
    for key in ("logits", "seg", "rec"):
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_mtl_size_sets_depths_and_options_are_checked():
    assert build_config("mtl_swin_unet").depths == (2, 2, 2, 2)
    assert build_config("mtl_swin_unet", size="tiny").depths == (2, 2, 6, 2)
    assert build_config("mtl_swin_unet", depths=[1, 1, 1, 1]).depths == (1, 1, 1, 1)
    assert build_config("mtl_swin_unet", size="tiny", depths=[2, 2, 6, 2]).depths == (2, 2, 6, 2)  # agree: fine
    with pytest.raises(ValueError, match=r"size 'tiny' means depths \(2, 2, 6, 2\), but depths \(1, 1, 1, 1\)"):
        build_config("mtl_swin_unet", size="tiny", depths=[1, 1, 1, 1])  # size would be ignored
    assert build_config("swin_tiny").depths == (2, 2, 6, 2) and build_config("swin").depths == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="tasks must be one of 'cls\\+seg', 'cls\\+rec', 'cls\\+seg\\+rec'; got 'seg'"):
        build_config("mtl_swin_unet", tasks="seg")
    with pytest.raises(ValueError, match="decoder must be one of"):
        build_config("mtl_swin_unet", decoder="twice")


def test_joint_swin_concatenates_trainable_then_frozen_features():
    model = create_model("joint_swin", **test_overrides("joint_swin")).eval()
    x = _x()
    with torch.no_grad():
        a, b = model.encoder(x).bottleneck, model.frozen_encoder(x).bottleneck
        expected = model.head(torch.cat([a, b], -1).mean(dim=(1, 2)))
        assert torch.allclose(model(x)["logits"], expected, atol=1e-6)
    assert model.head.in_features == 2 * model.encoder.num_features


def test_frozen_encoder_loads_from_our_swin_unet_checkpoint_and_run_folder(tmp_path):
    tiny = test_overrides("joint_swin")
    torch.manual_seed(3)
    seg = create_model("swin_unet", **tiny).eval()  # same encoder sizes as the joint model
    save_model(seg, tmp_path / "run" / "model.safetensors")
    for source in (tmp_path / "run" / "model.safetensors", tmp_path / "run"):
        model = create_model("joint_swin", **tiny, frozen_encoder=str(source)).eval()
        x = _x()
        with torch.no_grad():
            assert torch.equal(model.frozen_encoder(x).bottleneck, seg.encoder(x).bottleneck)
        assert not any(p.requires_grad for p in model.frozen_encoder.parameters())
    report = model.load_frozen_encoder(tmp_path / "run")
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(model.frozen_encoder.state_dict())
    assert all(k.startswith(("decoders.", "seg_head.")) for k in report.ignored)


def test_frozen_encoder_refuses_a_checkpoint_whose_keys_do_not_match(tmp_path):
    tiny = test_overrides("joint_swin")
    deeper = create_model("swin_unet", **{**tiny, "depths": (2, 3)})
    save_model(deeper, tmp_path / "deeper.safetensors")
    model = create_model("joint_swin", **tiny)
    with pytest.raises(ValueError, match=r"refusing a partial load .*stages\.1\.blocks\.2"):
        model.load_frozen_encoder(tmp_path / "deeper.safetensors")
    wider = create_model("swin_unet", **{**tiny, "embed_dim": 16})
    save_model(wider, tmp_path / "wider.safetensors")
    with pytest.raises(ValueError, match="another shape than the model"):
        model.load_frozen_encoder(tmp_path / "wider.safetensors")


def test_decoder_output_is_the_final_patch_expand_and_with_head_weights_equals_1x1_convs_of_it():
    torch.manual_seed(0)
    enc, dec = SwinEncoder(**TINY).eval(), SwinUnetDecoder(**TINY).eval()
    with torch.no_grad():
        dec.up.norm.weight.normal_()  # a LayerNorm affine that is not the identity
        dec.up.norm.bias.normal_()
        feats = enc(_x())
        pixels = dec(feats)
        reference = dec.up(dec.forward_tokens(feats)).permute(0, 3, 1, 2)  # FinalPatchExpand, then NCHW
        assert pixels.shape == (2, 8, 32, 32) and torch.equal(pixels, reference)
        heads = torch.randn(3, 8)
        as_conv = torch.nn.functional.conv2d(reference, heads[:, :, None, None])
        projected = dec(feats, head_weight=heads)
        assert projected.shape == (2, 3, 32, 32)
        assert (projected - as_conv).abs().max() < 1e-5 * as_conv.abs().max()
