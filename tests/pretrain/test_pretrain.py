"""SimMIM pretraining: the loss falls, counts masked pixels only, resumes exactly, and its encoder loads everywhere."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from data_fixtures import make_tiny_data
from mtlswin.models import create_model, test_overrides
from mtlswin.models.configs import TEST_ENCODER
from mtlswin.models.encoder import SwinEncoder
from mtlswin.pretrain.config import pretrain_config_from_dict
from mtlswin.pretrain.run import pretrain
from mtlswin.pretrain.simmim import SimMIM, masked_l1, random_mask

SWIN_FAMILIES = [
    ("swin", {}), ("swin_tiny", {}), ("swin_unet", {}), ("joint_swin", {}), ("joint_swin_tiny", {}),
    ("mtl_swin_unet", {"tasks": "cls+seg"}), ("mtl_swin_unet", {"tasks": "cls+rec"}),
    ("mtl_swin_unet", {"tasks": "cls+seg+rec"}), ("mtl_swin_unet", {"tasks": "cls+seg+rec", "decoder": "separate"}),
]  # fmt: skip


def _config(tmp_path, data, name="run", epochs=4, model="swin", options=None, **trainer):
    opts = {**TEST_ENCODER, **(options or {})}
    return pretrain_config_from_dict({
        "model": {"name": model, **opts},
        "data": {"inputs": [str(data.manifest)], "batch_size": 8, "num_workers": 0},
        "pretrain": {"mask_ratio": 0.6, "epochs": epochs, "lr": 3e-3, "warmup_steps": 2, "checkpoint_every_n_steps": 3},
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, **trainer},
        "output": {"dir": str(tmp_path / "runs"), "name": name},
    })  # fmt: skip


def test_masked_l1_ignores_unmasked_pixels():
    torch.manual_seed(0)
    target = torch.rand(2, 1, 8, 8)
    pred = torch.rand(2, 1, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    loss = masked_l1(pred, target, mask)
    expected = ((pred - target).abs() * mask).sum() / mask.sum()
    assert torch.isclose(loss, expected)
    changed = pred + 100.0 * (1 - mask)  # only visible pixels change
    assert torch.equal(masked_l1(changed, target, mask), loss)
    assert masked_l1(pred + 1.0 * mask, target, mask) != loss  # masked pixels do count


def test_random_mask_count_and_simmim_shapes():
    gen = torch.Generator().manual_seed(0)
    mask = random_mask(3, 8, 0.6, gen)
    assert mask.shape == (3, 8, 8) and (mask.sum(dim=(1, 2)) == round(0.6 * 64)).all()
    model = SimMIM(SwinEncoder(**TEST_ENCODER), mask_patch=4)
    loss, pred = model(torch.rand(3, 1, 32, 32), mask)
    assert pred.shape == (3, 1, 32, 32) and loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="multiple of the encoder's patch_size"):
        SimMIM(SwinEncoder(**TEST_ENCODER), mask_patch=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("tiny"), n=32, size=32)


@pytest.fixture(scope="module")
def long_run(tiny, tmp_path_factory):
    """15 epochs x 4 batches = 60 steps on the tiny phantom-like slices."""
    root = tmp_path_factory.mktemp("long")
    return pretrain(_config(root, tiny, epochs=15))


def test_loss_falls(long_run):
    import pandas as pd

    log = pd.read_csv(long_run / "logs" / "metrics.csv").dropna(subset=["train/loss"])
    assert len(log) == 60
    first, last = log["train/loss"].iloc[:4].mean(), log["train/loss"].iloc[-4:].mean()
    assert last < 0.8 * first, (first, last)


def test_encoder_file_is_the_encoder_state_dict_with_corpus_stats(long_run, tiny):
    from mtlswin.models.checkpoint import read_encoder_checkpoint

    state, meta = read_encoder_checkpoint(long_run / "encoder.safetensors")
    assert set(state) == set(SwinEncoder(**TEST_ENCODER).state_dict())
    assert meta["info"]["steps"] == 60 and meta["info"]["method"] == "SimMIM"
    # corpus-stats: the pixel mean/std of the 32 slices became the encoder's standardisation
    assert 0.05 < meta["config"]["input_mean"] < 0.95 and meta["config"]["input_std"] > 0.01
    assert abs(meta["config"]["input_mean"] - meta["info"]["corpus_mean"]) < 1e-5


@pytest.mark.parametrize(("name", "extra"), SWIN_FAMILIES, ids=lambda v: str(v))
def test_encoder_loads_into_every_swin_family(long_run, name, extra, recwarn):
    saved = load_file(str(long_run / "encoder.safetensors"))
    opts = {**test_overrides(name), **TEST_ENCODER, **extra}
    if name.endswith("_tiny"):
        opts["depths"] = TEST_ENCODER["depths"]
    model = create_model(name, **opts, pretrained=str(long_run / "encoder.safetensors"))
    report = model.pretrained_report
    encoders = ["encoder", "frozen_encoder"] if name.startswith("joint") else ["encoder"]
    assert report.complete and not report.missing and not report.unexpected
    assert sorted(report.used) == sorted(saved)
    assert len(report.loaded) == len(encoders) * len(saved)
    others = [k for k in model.state_dict() if not k.startswith(tuple(f"{e}." for e in encoders))]
    assert sorted(report.kept_init) == sorted(others) and others  # heads / decoders reported, not silent
    for enc in encoders:
        own = getattr(model, enc).state_dict()
        assert all(torch.equal(own[k], v) for k, v in saved.items())
    assert any("pretrained on input standardised" in str(w.message) for w in recwarn)  # model keeps mean 0 / std 1


def test_encoder_of_other_sizes_is_refused(long_run):
    with pytest.raises(ValueError, match=r"does not fit this model.*embed_dim"):
        create_model("swin", **{**TEST_ENCODER, "embed_dim": 16}, pretrained=str(long_run / "encoder.safetensors"))


def test_resume_reaches_the_weights_of_an_uninterrupted_run(tiny, tmp_path):
    straight = pretrain(_config(tmp_path, tiny, name="straight", epochs=2))  # 8 steps
    stopped = pretrain(_config(tmp_path, tiny, name="resumed", epochs=2, max_steps=5))
    ckpt = torch.load(stopped / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    # stopped after 5 steps; last.ckpt is from step 3 (checkpoint_every_n_steps=3), as a killed run would leave it
    assert ckpt["global_step"] == 3 and ckpt["optimizer_states"][0]["state"]
    resumed = pretrain(_config(tmp_path, tiny, name="resumed", epochs=2), resume=True)
    a, b = load_file(str(straight / "encoder.safetensors")), load_file(str(resumed / "encoder.safetensors"))
    assert set(a) == set(b)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    import pandas as pd

    assert len(pd.read_csv(resumed / "logs" / "metrics.csv").dropna(subset=["train/loss"])) == 8
