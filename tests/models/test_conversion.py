"""Converters: the authors' checkpoints (checked against an independent re-implementation of their
forward), the reference .tsv layouts at the paper's size, ImageNet Swin weights, `mtlswin convert`."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest
import torch
from swin_authors_reference import Arch, encode, joint_forward, joint_keys, mtl_forward, random_state, swin_unet_keys
from timm.models.swin_transformer import SwinTransformer

from mtlswin.cli import main
from mtlswin.models import create_model, load_model
from mtlswin.models.conversion import timm_hub
from mtlswin.models.conversion.files import read_state_dict
from mtlswin.models.conversion.swin import (
    detect_format,
    from_authors_joint,
    from_authors_mtl,
    from_swin_imagenet,
    from_swin_unet,
    infer_swin_unet_config,
)

# Copies of shared/reference/*.tsv (key, shape, dtype of the authors' saved state dicts at the paper's size).
REFERENCE = Path(__file__).resolve().parent / "reference"
TINY_ARCH = Arch(img_size=64, embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2), window_size=2)
# Equivalence checks run both sides in float64, so the bound tests the mapping, not float32 rounding
# (in float32 the same comparisons differ by about 1e-5 after 4 stages + the decoder, well under the
# outside check's 1e-4; the CLI test below checks that float32 bound).
ATOL = 1e-5
ATOL_FLOAT32 = 1e-4


def _x(size: int = 64, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(5)).to(dtype)


def _f64(sd: dict) -> dict:
    return {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}


def _tsv(name: str) -> list[tuple[str, tuple]]:
    rows = []
    for line in (REFERENCE / name).read_text().splitlines():
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(ast.literal_eval(shape)), dtype))
    return [(k, s) for k, s, _ in rows]


def _mtl_model(sd: dict, **overrides) -> torch.nn.Module:
    return create_model("mtl_swin_unet", **{**infer_swin_unet_config(sd), **overrides}).eval()


def _assert_accounts_for_every_key(report, sd):
    assert report.unexpected == [] and report.missing == []
    assert set(report.used) | set(report.ignored) == set(sd)
    assert not set(report.used) & set(report.ignored)


# ------------------------------------------------------------------ the reference layouts (paper size)
@pytest.mark.parametrize(
    ("tsv", "layout"),
    [
        ("authors-mtl-swin-unet-state-dict.tsv", lambda a: swin_unet_keys(a, "swin_unet.")),
        ("authors-joint-swin-state-dict.tsv", joint_keys),
    ],
)
def test_the_reference_helper_reproduces_the_tsv_layouts_key_for_key(tsv, layout):
    assert layout(Arch()) == _tsv(tsv)


def test_authors_mtl_layout_at_paper_size_is_consumed_completely():
    sd = random_state(_tsv("authors-mtl-swin-unet-state-dict.tsv"))
    assert len(sd) == 241 and detect_format(sd) == "authors-mtl"
    options = infer_swin_unet_config(sd)
    assert options == {
        "patch_size": 4,
        "embed_dim": 96,
        "depths": (2, 2, 2, 2),
        "num_heads": (3, 6, 12, 24),
        "window_size": 7,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "img_size": 224,
        "n_classes": 2,
        "n_seg_classes": 2,
    }
    model = create_model("mtl_swin_unet")  # the defaults are the paper's sizes
    report = from_authors_mtl(model, sd)
    _assert_accounts_for_every_key(report, sd)
    assert (len(report.used), len(report.ignored), len(report.loaded)) == (221, 20, 221)
    assert set(report.ignored.values()) == {"buffer, rebuilt at construction"}
    assert torch.equal(model.head.weight, sd["swin_unet.head_cls.weight"])
    assert torch.equal(model.rec_head.weight, sd["swin_unet.output_reconstruction.weight"].flatten(1))


def test_authors_joint_layout_at_paper_size_is_consumed_completely():
    sd = random_state(_tsv("authors-joint-swin-state-dict.tsv"), seed=1)
    assert len(sd) == 482 and detect_format(sd) == "authors-joint"
    model = create_model("joint_swin")
    report = from_authors_joint(model, sd)
    _assert_accounts_for_every_key(report, sd)
    assert (len(report.used), len(report.ignored)) == (240, 242)
    assert len(report.loaded) == len(model.state_dict()) == 240
    w = sd["representation_extractor.layers.2.blocks.1.attn.qkv.weight"]
    assert torch.equal(model.frozen_encoder.stages[2].blocks[1].attn.qkv.weight, w)
    assert torch.equal(
        model.frozen_encoder.patch_embed.proj.weight,
        sd["representation_extractor.patch_embed.proj.weight"].sum(1, keepdim=True),
    )


# ------------------------------------------------------------------ outputs equal the authors' forward
@pytest.mark.parametrize("decoder", ["shared", "separate"])
def test_authors_mtl_checkpoint_gives_the_authors_outputs(decoder):
    sd = random_state(swin_unet_keys(TINY_ARCH, "swin_unet."), seed=2)
    model = _mtl_model(sd, decoder=decoder)
    report = from_authors_mtl(model, sd)
    _assert_accounts_for_every_key(report, sd)
    x = _x()
    with torch.no_grad():
        ours = model.double().eval()(x)
        logits, seg, rec = mtl_forward(x, _f64(sd), TINY_ARCH)
    for key, ref in (("logits", logits), ("seg", seg), ("rec", rec)):
        assert ours[key].shape == ref.shape
        assert (ours[key] - ref).abs().max() < ATOL, key


def test_authors_joint_checkpoint_gives_the_authors_logits():
    sd = random_state(joint_keys(TINY_ARCH), seed=3)
    options = {k: v for k, v in infer_swin_unet_config(sd).items() if k != "n_seg_classes"}
    model = create_model("joint_swin", **options).eval()
    _assert_accounts_for_every_key(from_authors_joint(model, sd), sd)
    x = _x()
    with torch.no_grad():
        assert (model.double()(x)["logits"] - joint_forward(x, _f64(sd), TINY_ARCH)).abs().max() < ATOL


def test_swin_unet_checkpoint_gives_the_segmentation_of_the_same_layout():
    full = random_state(swin_unet_keys(TINY_ARCH, "swin_unet."), seed=4)
    sd = {k: v for k, v in full.items() if "head_cls" not in k and "output_reconstruction" not in k}
    assert detect_format(sd) == "swin-unet"
    options = {k: v for k, v in infer_swin_unet_config(sd).items() if k != "n_classes"}
    model = create_model("swin_unet", **options).eval()
    _assert_accounts_for_every_key(from_swin_unet(model, sd), sd)
    x = _x()
    with torch.no_grad():
        assert (model.double()(x)["seg"] - mtl_forward(x, _f64(full), TINY_ARCH)[1]).abs().max() < ATOL


def test_partial_loads_are_refused_unless_allowed():
    sd = random_state(swin_unet_keys(TINY_ARCH, "swin_unet."), seed=2)
    seg_only = {k: v for k, v in sd.items() if "head_cls" not in k}
    with pytest.raises(
        ValueError, match=r"refusing a partial load .*2 missing key\(s\) \['head.weight', 'head.bias'\]"
    ):
        from_swin_unet(_mtl_model(sd, tasks="cls+seg"), seg_only)
    report = from_swin_unet(_mtl_model(sd, tasks="cls+seg"), seg_only, allow_partial=True)
    assert report.missing == ["head.weight", "head.bias"]
    with pytest.raises(ValueError, match="another shape than the model"):
        from_authors_mtl(_mtl_model(sd, n_classes=3), sd)
    deeper = _mtl_model(sd, depths=(2, 2, 3, 2))
    with pytest.raises(ValueError, match=r"missing key\(s\) \['encoder.stages.2.blocks.2"):
        from_authors_mtl(deeper, sd)


def test_heads_of_tasks_the_model_lacks_are_reported_as_ignored():
    sd = random_state(swin_unet_keys(TINY_ARCH, "swin_unet."), seed=2)
    report = from_authors_mtl(_mtl_model(sd, tasks="cls+rec"), sd)
    assert report.ignored["swin_unet.output.weight"] == "head of a task this model does not have"
    _assert_accounts_for_every_key(report, sd)


# ------------------------------------------------------------------ ImageNet Swin weights
def _official_layout(timm_state: dict) -> dict:
    """timm keys -> the official Swin v1 layout (merging at the END of the previous stage), with buffers."""
    out = {}
    for key, value in timm_state.items():
        key = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}.downsample", key)
        out[key.replace("head.fc.", "head.")] = value
    out["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(4, 4, dtype=torch.long)
    return {"model": out}


def _imagenet_like(depths=(2, 2), seed=6) -> SwinTransformer:
    torch.manual_seed(seed)
    return SwinTransformer(
        img_size=32, patch_size=2, window_size=4, embed_dim=8, depths=depths, num_heads=(1, 2), num_classes=10
    ).eval()


@pytest.mark.parametrize("layout", ["official", "timm"])
def test_imagenet_weights_load_with_the_rgb_kernel_summed_to_gray(layout):
    ref = _imagenet_like(depths=(2, 4))  # deeper stage 1, like Swin-T weights into the paper's 2-2-2-2
    sd = _official_layout(ref.state_dict()) if layout == "official" else ref.state_dict()
    model = create_model("swin", img_size=32, patch_size=2, window_size=4, embed_dim=8, depths=(2, 2), num_heads=(1, 2))
    report = from_swin_imagenet(model.eval(), sd)
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(model.encoder.state_dict())
    assert sorted(report.kept_init) == ["head.bias", "head.weight"]
    assert report.summed_rgb == ["encoder.patch_embed.proj.weight"]
    dropped = [k for k, why in report.ignored.items() if why.startswith("block or stage beyond")]
    assert len(dropped) == 2 * 13 and all(re.match(r"layers\.1\.blocks\.[23]\.", k) for k in dropped)
    assert report.ignored.get("head.weight", report.ignored.get("head.fc.weight")) == "ImageNet classifier head"
    # The first two blocks of stage 1 only: compare with the reference cut to the same depth.
    cut = _imagenet_like(depths=(2, 2))
    cut.load_state_dict({k: v for k, v in ref.state_dict().items() if not re.match(r"layers\.1\.blocks\.[23]\.", k)})
    x = _x(32)
    with torch.no_grad():
        ours = model.double().encoder(x).bottleneck
        theirs = cut.double().forward_features(x.repeat(1, 3, 1, 1))  # the gray image repeated to RGB
    assert (ours - theirs).abs().max() < ATOL


def test_imagenet_weights_are_mirrored_into_every_decoder_as_swin_unet_does():
    ref = _imagenet_like()
    opts = {"img_size": 32, "patch_size": 2, "window_size": 4, "embed_dim": 8, "depths": (2, 2), "num_heads": (1, 2)}
    model = create_model("mtl_swin_unet", **opts, decoder="separate")
    report = from_swin_imagenet(model, _official_layout(ref.state_dict()))
    per_block = 13  # norm1 (2), rel. table, qkv (2), proj (2), norm2 (2), fc1 (2), fc2 (2)
    assert len(report.mirrored) == 2 * 2 * per_block  # 2 decoders x level-0 stage of 2 blocks
    for name in ("seg", "rec"):
        dec_w = model.decoders[name].layers_up[1].blocks[1].attn.qkv.weight
        assert torch.equal(dec_w, model.encoder.stages[0].blocks[1].attn.qkv.weight)
    assert "head.weight" in report.kept_init and "decoders.seg.up.expand.weight" in report.kept_init


# ------------------------------------------------------------------ files, CLI, `pretrained`
def test_mtlswin_convert_writes_a_checkpoint_that_rebuilds_the_authors_model(tmp_path, capsys):
    sd_mtl = random_state(swin_unet_keys(TINY_ARCH, "swin_unet."), seed=7)
    sd_joint = random_state(joint_keys(TINY_ARCH), seed=8)
    torch.save({f"module.{k}": v for k, v in sd_mtl.items()}, tmp_path / "mtl.pth")  # DataParallel prefix too
    torch.save(sd_joint, tmp_path / "joint.pth")
    assert main(["convert", "--from", "authors-mtl", str(tmp_path / "mtl.pth"), str(tmp_path / "mtl.safetensors")]) == 0
    assert "loaded: 221" in capsys.readouterr().out
    assert (
        main(["convert", "--from", "authors-joint", str(tmp_path / "joint.pth"), str(tmp_path / "j.safetensors")]) == 0
    )
    x = _x(dtype=torch.float32)  # float32 end to end, as the outside check runs it
    mtl, joint = load_model(tmp_path / "mtl.safetensors").eval(), load_model(tmp_path / "j.safetensors").eval()
    assert (mtl.model_name, joint.model_name) == ("mtl_swin_unet", "joint_swin")
    with torch.no_grad():
        ours, ref = mtl(x), mtl_forward(x, sd_mtl, TINY_ARCH)
        for key, value in zip(("logits", "seg", "rec"), ref, strict=True):
            assert (ours[key] - value).abs().max() < ATOL_FLOAT32, key
        assert (joint(x)["logits"] - joint_forward(x, sd_joint, TINY_ARCH)).abs().max() < ATOL_FLOAT32
    code = main(
        [
            "convert",
            "--from",
            "authors-mtl",
            str(tmp_path / "mtl.pth"),
            str(tmp_path / "o.safetensors"),
            "--set",
            "n_classes=3",
        ]
    )
    assert code == 1 and "another shape than the model" in capsys.readouterr().err


def test_pretrained_local_file_uses_the_converter_that_fits(tmp_path):
    sd = random_state(swin_unet_keys(TINY_ARCH, "swin_unet."), seed=9)
    torch.save(sd, tmp_path / "authors.pth")
    model = _mtl_model(sd, pretrained=str(tmp_path / "authors.pth")).eval()
    x = _x()
    with torch.no_grad():
        assert (model.double()(x)["seg"] - mtl_forward(x, _f64(sd), TINY_ARCH)[1]).abs().max() < ATOL
    with pytest.raises(ValueError, match="does not exist"):
        _mtl_model(sd, pretrained=str(tmp_path / "nowhere.pth"))


def test_pretrained_timm_goes_through_the_timm_loader(monkeypatch):
    ref = _imagenet_like()
    asked = []
    monkeypatch.setattr(timm_hub, "timm_pretrained_state_dict", lambda name: asked.append(name) or ref.state_dict())
    monkeypatch.setattr(timm_hub, "timm_name_for", lambda config: "swin_tiny_patch4_window7_224")
    opts = {"img_size": 32, "patch_size": 2, "window_size": 4, "embed_dim": 8, "depths": (2, 2), "num_heads": (1, 2)}
    model = create_model("swin", **opts, pretrained="timm")
    assert asked == ["swin_tiny_patch4_window7_224"]
    assert torch.equal(model.encoder.stages[1].blocks[0].mlp.fc1.weight, ref.layers[1].blocks[0].mlp.fc1.weight)


def test_pretrained_timm_fails_at_once_offline_naming_the_local_file_option(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")  # no cached weights either
    opts = {"img_size": 32, "patch_size": 2, "window_size": 4, "embed_dim": 96, "depths": (2, 2), "num_heads": (3, 6)}
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=re.escape("pretrained: /path/to/weights.pth")):
        create_model("swin", **opts, pretrained="timm")
    assert time.perf_counter() - start < 10
    with pytest.raises(ValueError, match="no ImageNet Swin in timm has embed_dim 8"):
        create_model("swin", **{**opts, "embed_dim": 8, "num_heads": (1, 2)}, pretrained="timm")


class _NotATensor:
    pass


def test_foreign_files_are_read_without_unpickling_objects(tmp_path):
    torch.save({"w": torch.ones(2), "evil": _NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        read_state_dict(tmp_path / "evil.pth")


def test_frozen_encoder_loads_an_authors_segmentation_checkpoint_and_refuses_a_wrong_prefix(tmp_path):
    sd = random_state(swin_unet_keys(TINY_ARCH, "swin_unet.", heads=("seg",)), seed=10)
    torch.save(sd, tmp_path / "seg.pth")
    options = {k: v for k, v in infer_swin_unet_config(sd).items() if k != "n_seg_classes"}
    model = create_model("joint_swin", **options, frozen_encoder=str(tmp_path / "seg.pth"))
    report = model.load_frozen_encoder(tmp_path / "seg.pth")
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(model.frozen_encoder.state_dict())
    x = _x()
    with torch.no_grad():
        ours = model.double().frozen_encoder(x).bottleneck.flatten(1, 2)  # B, L, C like theirs
        assert (ours - encode(x, _f64(sd), "swin_unet.", TINY_ARCH)[0]).abs().max() < ATOL
    # The authors' loader used strict=False and silently kept a random encoder on a prefix mismatch.
    torch.save({f"model.{k}": v for k, v in sd.items()}, tmp_path / "prefixed.pth")
    with pytest.raises(ValueError, match="refusing a partial load"):
        model.load_frozen_encoder(tmp_path / "prefixed.pth")
