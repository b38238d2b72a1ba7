"""seg_gated_swin: shapes, the frozen segmenter, the gate (known answers), loading the segmenter, save/load."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from mtlswin.models import create_model, load_model, save_model, test_overrides
from mtlswin.models.seg_gated import dilate

SIZE = 32
SQUARE = (slice(12, 18), slice(10, 16))  # rows 12..17, cols 10..15: the "predicted lesion"


def _model(**overrides) -> nn.Module:
    torch.manual_seed(0)
    return create_model("seg_gated_swin", **{**test_overrides("seg_gated_swin"), **overrides}).eval()


class _SquareSegmenter(nn.Module):
    """A segmenter forced to predict the lesion exactly on SQUARE (logits +-30: probabilities exactly 0 / 1)."""

    def forward(self, x, tasks=None):
        seg = torch.zeros(x.shape[0], 2, *x.shape[-2:])
        seg[:, 0], seg[:, 1] = 30.0, -30.0
        seg[:, 0][(slice(None), *SQUARE)], seg[:, 1][(slice(None), *SQUARE)] = -30.0, 30.0
        return {"seg": seg}


def _unet(tmp_path, **overrides):
    torch.manual_seed(1)
    sizes = {k: v for k, v in test_overrides("seg_gated_swin").items() if k != "gate_radius"}
    unet = create_model("swin_unet", **sizes, **overrides)
    save_model(unet, tmp_path / "unet_run" / "model.safetensors")
    return unet.eval(), tmp_path / "unet_run"


def test_output_shape_and_tasks():
    out = _model()(torch.rand(3, 1, SIZE, SIZE))
    assert set(out) == {"logits"} and out["logits"].shape == (3, 2)
    assert _model().tasks == ("cls",)


def test_segmenter_frozen_no_grad_and_always_eval():
    model = _model().train()
    assert model.encoder.training and not any(m.training for m in model.segmenter.modules())
    assert not any(p.requires_grad for p in model.segmenter.parameters())
    model(torch.rand(2, 1, SIZE, SIZE))["logits"].sum().backward()
    assert all(p.grad is None for p in model.segmenter.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.head.weight.grad is not None


def test_dilate_known_answer():
    prob = torch.zeros(1, 1, 20, 20)
    prob[0, 0, 10, 10] = 0.7
    out = dilate(prob, 2)
    assert (out > 0).sum() == 25  # the 5x5 square
    assert torch.all(out[0, 0, 8:13, 8:13] == 0.7) and out[0, 0, 7, 10] == 0 and out[0, 0, 10, 13] == 0
    assert torch.equal(dilate(prob, 0), prob)


@pytest.mark.parametrize("radius", [0, 2])
def test_gate_region_and_pixels_outside_do_not_matter(radius):
    model = _model(gate_radius=radius)
    model.segmenter = _SquareSegmenter()
    x = torch.rand(1, 1, SIZE, SIZE)
    gate = model.gate(x)[0, 0]
    rows, cols = torch.nonzero(gate).unbind(1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (12 - radius, 17 + radius, 10 - radius, 15 + radius)
    assert torch.all(gate[gate > 0] == 1.0)
    logits = model(x)["logits"]
    outside = x.clone()
    outside[gate.expand_as(x) == 0] = torch.rand(int((gate == 0).sum()))  # change every pixel outside
    assert torch.equal(model(outside)["logits"], logits)
    inside = x.clone()
    inside[0, 0, 14, 12] = 1.0 - x[0, 0, 14, 12]  # one pixel of the lesion
    assert not torch.allclose(model(inside)["logits"], logits)


def test_gate_floor_lets_context_through():
    model = _model(gate_radius=0, gate_floor=0.1)
    model.segmenter = _SquareSegmenter()
    gate = model.gate(torch.rand(1, 1, SIZE, SIZE))[0, 0]
    assert gate[0, 0] == pytest.approx(0.1) and gate[14, 12] == 1.0
    with pytest.raises(ValueError, match="gate_floor"):
        _model(gate_floor=1.0)
    with pytest.raises(ValueError, match="gate_radius"):
        _model(gate_radius=-1)


def test_segmenter_from_run_folder_and_file(tmp_path):
    unet, run = _unet(tmp_path, input_mean=0.3, input_std=0.5)
    x = torch.rand(2, 1, SIZE, SIZE)
    expected = dilate(1 - unet(x)["seg"].softmax(1)[:, :1], 2)
    for source in (run, run / "model.safetensors"):
        model = _model(frozen_encoder=str(source))
        assert model.config.segmenter_input_mean == pytest.approx(0.3) and model.config.segmenter_input_std == 0.5
        sd = model.segmenter.state_dict()
        assert all(torch.equal(sd[k], v) for k, v in unet.state_dict().items())
        torch.testing.assert_close(model.gate(x), expected)
        assert not any(p.requires_grad for p in model.segmenter.parameters())


def test_missing_or_misfit_segmenter_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_run"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        _model(frozen_encoder=str(missing))
    _, run = _unet(tmp_path)
    with pytest.raises(ValueError, match=r"embed_dim.*--set model.embed_dim=8"):
        _model(frozen_encoder=str(run), embed_dim=12)


def test_save_load_round_trip_without_the_segmenter_file(tmp_path):
    _, run = _unet(tmp_path)
    model = _model(frozen_encoder=str(run), gate_radius=3, gate_floor=0.05)
    path = save_model(model, tmp_path / "gated" / "model.safetensors")
    shutil.rmtree(run)  # the segmenter's weights are inside the saved model: its source is no longer needed
    loaded = load_model(path).eval()
    x = torch.rand(2, 1, SIZE, SIZE)
    assert torch.equal(loaded(x)["logits"], model(x)["logits"])
    assert loaded.config.gate_radius == 3 and loaded.config.frozen_encoder == str(run)
    assert not loaded.segmenter.training and not any(p.requires_grad for p in loaded.segmenter.parameters())
