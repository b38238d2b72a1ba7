"""Known answers of the training options RRR, CAM alignment and GroupDRO, and how MTLModule composes them."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mtlswin.config import TrainConfig, config_from_dict, load_config, save_config
from mtlswin.methods import get_method, method_names
from mtlswin.methods.cam_align import CamAlignGuidance, CamAlignSettings, class_activation_map, soft_dice
from mtlswin.methods.groupdro import GroupDRO, GroupDROSettings
from mtlswin.methods.rrr import RRRGuidance, RRRSettings, evidence_region, rrr_penalty
from mtlswin.models import create_model, test_overrides
from mtlswin.posthoc.cue_probe import CueProbeSettings, cue_probe
from mtlswin.posthoc.dfr import DFRSettings, dfr_run
from mtlswin.training.losses import MultitaskLoss
from mtlswin.training.module import MTLModule


def _tiny(name: str = "swin") -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **test_overrides(name))


def _batch(n: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    """Slice 0: positive, masked hematoma; 1: negative, annotated, empty; 2: positive, unannotated; 3: negative."""
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(n, size, size, dtype=torch.long)
    mask[0, 8:16, 8:16] = 1
    return {
        "image": torch.rand(n, 1, size, size, generator=g),
        "label": torch.tensor([1, 0, 1, 0][:n]),
        "mask": mask,
        "has_mask": torch.tensor([True, True, False, False][:n]),
        "cue": torch.tensor([1, 0, 0, 1][:n]),
    }


def _logged(module, monkeypatch) -> dict[str, float]:
    calls: dict[str, float] = {}
    monkeypatch.setattr(
        module, "log", lambda name, value, **kw: calls.__setitem__(name, float(torch.as_tensor(value).detach()))
    )
    return calls


# --- RRR -------------------------------------------------------------------------------------------------


def test_rrr_penalty_is_zero_inside_the_mask_and_the_squared_sum_outside():
    allowed = torch.zeros(1, 4, 4)
    allowed[0, 0, 0] = 1.0
    inside = torch.zeros(1, 1, 4, 4)
    inside[0, 0, 0, 0] = 2.0
    assert rrr_penalty(inside, allowed, torch.tensor([True])).item() == 0.0
    outside = inside.clone()
    outside[0, 0, 3, 3] = 3.0
    outside[0, 0, 1, 2] = -1.0
    assert rrr_penalty(outside, allowed, torch.tensor([True])).item() == pytest.approx(9.0 + 1.0)  # 3^2 + 1^2


def test_rrr_evidence_of_the_three_kinds_of_slice_and_the_mean_over_penalised_slices():
    mask = torch.zeros(3, 5, 5, dtype=torch.long)
    mask[0, 2, 2] = 1
    allowed, penalised = evidence_region(mask, torch.tensor([True, True, False]), dilation=1)
    assert allowed[0].sum() == 9 and allowed[0, 1:4, 1:4].eq(1).all()  # (a) 3x3 dilation of one pixel
    assert allowed[1].sum() == 0 and penalised.tolist() == [True, True, False]  # (b) everywhere, (c) nowhere
    grad = torch.zeros(3, 1, 5, 5)
    grad[0, 0, 0, 0] = 3.0  # outside the dilated hematoma: 9
    grad[0, 0, 2, 3] = 5.0  # inside the dilation margin: 0
    grad[1, 0, 4, 4] = 2.0  # anywhere on an empty annotated slice: 4
    grad[2] = 100.0  # unannotated: nothing
    assert rrr_penalty(grad, allowed, penalised).item() == pytest.approx((9.0 + 4.0) / 2)
    none = rrr_penalty(grad, allowed, torch.tensor([False, False, False]))
    assert none.item() == 0.0


def test_rrr_training_step_adds_lambda_times_the_penalty_and_the_penalty_trains(monkeypatch):
    module = MTLModule(_tiny(), TrainConfig(guidance=RRRSettings(weight=3.0)))
    calls = _logged(module, monkeypatch)
    total, _ = module._step(_batch(), "train")
    assert math.isfinite(calls["train/rrr"]) and calls["train/rrr"] > 0
    assert total.item() == pytest.approx(calls["train/cls"] + 3.0 * calls["train/rrr"], rel=1e-5)
    # create_graph: the penalty has a gradient w.r.t. the weights (here the head) of its own
    term = module.guidance[0]
    batch = term.prepare(module.model, _batch())
    penalty = term(module.model, batch, module.model(batch["image"]))["rrr"]
    (grad,) = torch.autograd.grad(penalty, module.model.head.weight)
    assert grad.abs().sum() > 0


def test_rrr_unannotated_batch_contributes_exactly_zero_and_validation_is_plain(monkeypatch):
    module = MTLModule(_tiny(), TrainConfig(guidance=RRRSettings()))
    calls = _logged(module, monkeypatch)
    batch = {**_batch(), "has_mask": torch.zeros(4, dtype=torch.bool)}
    total, _ = module._step(batch, "train")
    assert calls["train/rrr"] == 0.0 and total.item() == pytest.approx(calls["train/cls"])
    calls.clear()
    module._step(_batch(), "val")
    assert "train/rrr" not in calls and "val/cls" in calls


# --- CAM alignment -----------------------------------------------------------------------------------------


def test_soft_dice_known_answers_map_equal_to_mask_is_best():
    mask = torch.zeros(1, 4, 4)
    mask[0, 1:3, 1:3] = 1  # 4 pixels
    shifted = torch.roll(mask, shifts=1, dims=2)  # overlaps 2 of the 4 pixels
    uniform = torch.full_like(mask, 0.5)
    same, half, flat = (soft_dice(m, mask).item() for m in (mask, shifted, uniform))
    assert same == pytest.approx(1.0)  # 2*4 / (4 + 4)
    assert half == pytest.approx(0.5, abs=1e-6)  # 2*2 / (4 + 4)
    assert flat == pytest.approx(1 / 3, abs=1e-6)  # 2*2 / (8 + 4)
    assert 1 - same < 1 - half < 1 - flat  # the alignment loss is smallest for map == mask


def test_cam_equals_w_dot_a_and_the_projects_gradcam():
    from mtlswin.explain.gradcam import compute_cam

    model = _tiny().eval()
    term = CamAlignGuidance(1.0, model)
    x = _batch()["image"]
    term.prepare(model, {"image": x})
    with torch.no_grad():
        model(x)
    features = term._features  # the hooked bottleneck (B, h, w, C)
    term._release()
    w = model.head.weight[1]
    with torch.no_grad():
        tokens = model.encoder(x).bottleneck
        assert torch.equal(features, tokens)
        raw = (tokens @ w).relu()  # hand-computed w . A, (B, h, w)
        ours = class_activation_map(features, w, (32, 32))
        native = class_activation_map(features, w, tuple(raw.shape[1:]))
    assert torch.allclose(native, raw / (raw.amax(dim=(1, 2), keepdim=True) + 1e-6), atol=1e-6)
    assert (raw.flatten(1).amin(dim=1) == 0).all()  # so Grad-CAM's min-max scaling equals our max scaling
    gradcam = compute_cam(model, x)  # (B, 32, 32): ReLU(sum_c mean(dy/dA_c) A_c), scaled, resized
    assert np.allclose(ours.numpy(), gradcam, atol=1e-4)


def test_cam_align_term_only_on_masked_positive_slices_and_unsupported_models_refused(monkeypatch):
    module = MTLModule(_tiny(), TrainConfig(guidance=CamAlignSettings()))
    calls = _logged(module, monkeypatch)
    total, _ = module._step(_batch(), "train")
    assert 0 < calls["train/cam_align"] <= 1  # 1 - Dice of slice 0, the only masked positive
    assert total.item() == pytest.approx(calls["train/cls"] + 1.0 * calls["train/cam_align"], rel=1e-5)
    assert not module.guidance[0]._handle  # the hook is gone after the step
    negatives = {**_batch(), "label": torch.zeros(4, dtype=torch.long)}
    module._step(negatives, "train")
    assert calls["train/cam_align"] == 0.0
    with pytest.raises(ValueError, match="swin, swin_tiny, mtl_swin_unet"):
        MTLModule(_tiny("joint_swin"), TrainConfig(guidance=CamAlignSettings()))
    with pytest.raises(ValueError, match="needs a classification model"):
        MTLModule(_tiny("swin_unet"), TrainConfig(guidance=RRRSettings()))


# --- GroupDRO ----------------------------------------------------------------------------------------------

# groups 2*label + cue: two samples of group 0, one each of groups 1 and 2, two of group 3 (the worst)
_LABELS, _CUES = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 0, 1, 0, 1, 1])
_LOSSES = torch.tensor([1.0, 1.0, 1.0, 1.0, 5.0, 5.0])


def test_groupdro_first_update_is_the_hand_computed_one():
    dro = GroupDRO(eta=0.1)
    loss = dro(_LOSSES, {"label": _LABELS, "cue": _CUES})
    z = 3 * math.exp(0.1) + math.exp(0.5)
    expected = [math.exp(0.1) / z] * 3 + [math.exp(0.5) / z]  # q3 = 0.33212
    assert dro.q.tolist() == pytest.approx(expected, rel=1e-6)
    assert dro.q[3].item() == pytest.approx(0.33212, abs=1e-5)
    assert loss.item() == pytest.approx(sum(q * g for q, g in zip(expected, [1, 1, 1, 5], strict=True)), rel=1e-6)


def test_groupdro_moves_weight_monotonically_to_the_worst_group():
    dro = GroupDRO(eta=0.1)
    history = [dro.q[3].item()]
    for _ in range(10):
        dro(_LOSSES, {"label": _LABELS, "cue": _CUES})
        history.append(dro.q[3].item())
    assert all(b > a for a, b in itertools.pairwise(history))
    assert history[-1] == pytest.approx(math.exp(4.0) / (3 + math.exp(4.0)), rel=1e-5) and history[-1] > 0.5


def test_groupdro_absent_group_keeps_its_unnormalised_weight_and_eval_is_the_plain_mean():
    dro = GroupDRO(eta=0.1)
    batch = {"label": torch.tensor([0, 0, 1]), "cue": torch.tensor([0, 1, 0])}  # no group 1_1
    dro(torch.tensor([2.0, 2.0, 2.0]), batch)
    z = 0.75 * math.exp(0.2) + 0.25
    assert dro.q.tolist() == pytest.approx([0.25 * math.exp(0.2) / z] * 3 + [0.25 / z], rel=1e-6)
    q = dro.q.clone()
    dro.eval()
    assert dro(torch.tensor([1.0, 2.0, 6.0]), batch).item() == pytest.approx(3.0)
    assert torch.equal(dro.q, q)


def test_groupdro_needs_the_cue_column():
    dro = GroupDRO()
    with pytest.raises(ValueError, match="`cue`"):
        dro(torch.ones(2), {"label": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="cue -1"):
        dro(torch.ones(2), {"label": torch.tensor([0, 1]), "cue": torch.tensor([0, -1])})


def test_groupdro_in_the_module_logs_q_and_checkpoints_it(monkeypatch):
    module = MTLModule(_tiny(), TrainConfig(objective=GroupDROSettings(eta=0.5)))
    calls = _logged(module, monkeypatch)
    monkeypatch.setattr(module, "optimizers", lambda: torch.optim.SGD(module.parameters(), lr=0.1))
    module.training_step(_batch(), 0)
    q = module.loss_fn.cls_reduction.q.clone()
    assert sum(calls[f"train/groupdro_q_{g}"] for g in ("0_0", "0_1", "1_0", "1_1")) == pytest.approx(1.0)
    assert calls["train/groupdro_q_1_1"] == pytest.approx(q[3].item()) and not torch.allclose(q, torch.full((4,), 0.25))
    fresh = MTLModule(_tiny(), TrainConfig(objective=GroupDROSettings()))
    fresh.load_state_dict(module.state_dict())  # what Lightning does on resume
    assert torch.equal(fresh.loss_fn.cls_reduction.q, q)


def test_erm_and_no_guidance_leave_the_loss_and_the_state_dict_as_before():
    model = _tiny()
    module = MTLModule(model, TrainConfig())
    assert module.guidance == [] and module.loss_fn.cls_reduction is None
    assert set(module.state_dict()) == {f"model.{k}" for k in model.state_dict()}
    batch = _batch()
    logits = model(batch["image"])["logits"]
    _, parts = MultitaskLoss(("cls",))({"logits": logits}, batch)
    assert torch.equal(parts["cls"], F.cross_entropy(logits.float(), batch["label"]))


# --- config --------------------------------------------------------------------------------------------------


def _config(**train) -> dict:
    return {"model": {"name": "swin", **test_overrides("swin")}, "train": train}


def test_config_validates_the_method_options():
    cfg = config_from_dict(_config(guidance={"name": "rrr", "weight": 2}, objective={"name": "groupdro", "eta": 0.05}))
    assert cfg.train.guidance == RRRSettings(weight=2.0, dilation=2) and cfg.train.objective == GroupDROSettings(0.05)
    assert TrainConfig().guidance is None and TrainConfig().objective is None
    with pytest.raises(ValueError, match=r"train\.guidance: unknown guidance 'gradmask'.*valid: cam_align, rrr"):
        config_from_dict(_config(guidance="gradmask"))
    with pytest.raises(ValueError, match=r"train\.objective: unknown objective 'dro'.*valid: groupdro"):
        config_from_dict(_config(objective="dro"))
    with pytest.raises(ValueError, match=r"unknown guidance 'groupdro'"):  # a method of another kind
        config_from_dict(_config(guidance="groupdro"))
    with pytest.raises(ValueError, match=r"train\.objective \(groupdro\): eta must be a finite number > 0"):
        config_from_dict(_config(objective={"name": "groupdro", "eta": 0}))
    with pytest.raises(ValueError, match=r"train\.guidance \(rrr\): weight must be >= 0"):
        config_from_dict(_config(guidance={"name": "rrr", "weight": -1}))
    with pytest.raises(ValueError, match=r"train\.guidance \(rrr\): dilation must be >= 0"):
        config_from_dict(_config(guidance={"name": "rrr", "dilation": -1}))
    with pytest.raises(ValueError, match=r"train\.guidance\.weight must be float"):
        config_from_dict(_config(guidance={"name": "rrr", "weight": "heavy"}))
    with pytest.raises(ValueError, match=r"trainer\.compile"):
        config_from_dict({**_config(guidance="cam_align"), "trainer": {"compile": True}})


def test_the_new_form_bare_names_and_absent_methods():
    bare = config_from_dict(_config(guidance="cam_align", objective="groupdro")).train
    assert bare.guidance == CamAlignSettings() and bare.objective == GroupDROSettings()
    full = config_from_dict(_config(guidance={"name": "cam_align", "weight": 1}, objective={"name": "groupdro"})).train
    assert full.guidance == bare.guidance and full.objective == bare.objective
    for words in ({}, {"guidance": "none", "objective": "erm"}, {"guidance": None, "objective": None}):
        train = config_from_dict(_config(**words)).train
        assert train.guidance is None and train.objective is None


def test_defaults_are_those_of_before_the_registry():
    # before: DEFAULT_GUIDANCE_WEIGHTS = {"rrr": 10.0, "cam_align": 1.0}, guidance_dilation 2, groupdro_eta 0.01
    assert (RRRSettings().weight, RRRSettings().dilation) == (10.0, 2)
    assert CamAlignSettings().weight == 1.0 and GroupDROSettings().eta == 0.01
    term = MTLModule(_tiny(), TrainConfig(guidance=RRRSettings())).guidance[0]
    assert isinstance(term, RRRGuidance) and (term.weight, term.dilation) == (10.0, 2)
    assert MTLModule(_tiny(), TrainConfig(guidance=CamAlignSettings())).guidance[0].weight == 1.0
    assert MTLModule(_tiny(), TrainConfig(objective=GroupDROSettings())).loss_fn.cls_reduction.eta == 0.01


@pytest.mark.parametrize(
    ("key", "value", "new"),
    [
        (
            "guidance_weight",
            5,
            r"train\.guidance_weight was replaced by train\.guidance: \{name: rrr, weight: \.\.\.\}",
        ),
        ("guidance_dilation", 3, r"train\.guidance_dilation was replaced by train\.guidance: \{name: rrr, dilation:"),
        ("groupdro_eta", 0.1, r"train\.groupdro_eta was replaced by train\.objective: \{name: groupdro, eta:"),
    ],
)
def test_the_old_flat_keys_name_the_new_form(key, value, new):
    with pytest.raises(ValueError, match=new):
        config_from_dict(_config(guidance="rrr", **{key: value}))


def test_unknown_settings_name_the_methods_keys():
    with pytest.raises(ValueError, match=r"method 'rrr' has no setting 'eta'.*\(valid: name, weight, dilation\)"):
        config_from_dict(_config(guidance={"name": "rrr", "eta": 1}))
    with pytest.raises(ValueError, match=r"method 'cam_align' has no setting 'dilation'.*\(valid: name, weight\)"):
        config_from_dict(_config(guidance={"name": "cam_align", "dilation": 1}))
    with pytest.raises(ValueError, match=r"train\.guidance needs a name \(one of cam_align, rrr\)"):
        config_from_dict(_config(guidance={"weight": 1}))


def test_the_resolved_config_round_trips_and_overrides_reach_the_settings(tmp_path):
    cfg_file = tmp_path / "rrr.yaml"
    original = config_from_dict(_config(guidance="rrr", objective="groupdro"))
    save_config(original, cfg_file)
    text = cfg_file.read_text()
    assert "guidance:\n    name: rrr\n    weight: 10.0\n    dilation: 2" in text and "name: groupdro" in text
    loaded = load_config(cfg_file)
    assert loaded.train == original.train and loaded.to_dict() == original.to_dict()
    save_config(loaded, tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_text() == text
    plain = tmp_path / "plain.yaml"
    save_config(config_from_dict(_config()), plain)
    assert "guidance: none" in plain.read_text() and load_config(plain).train.guidance is None
    # --set into one setting keeps the name, also of a bare name; a bare name replaces the whole method
    assert load_config(cfg_file, ["train.guidance.weight=5"]).train.guidance == RRRSettings(weight=5.0)
    bare = tmp_path / "bare.yaml"
    bare.write_text("model: {name: swin}\ntrain: {guidance: rrr}\n")
    assert load_config(bare, ["train.guidance.dilation=0"]).train.guidance == RRRSettings(dilation=0)
    assert load_config(cfg_file, ["train.guidance=cam_align"]).train.guidance == CamAlignSettings()
    with pytest.raises(ValueError, match=r"train\.guidance_weight was replaced by"):
        load_config(cfg_file, ["train.guidance_weight=5"])


def test_the_registry_holds_every_method_and_the_post_hoc_defaults_are_their_entry_points():
    assert method_names("guidance") == ("cam_align", "rrr") and method_names("objective") == ("groupdro",)
    assert method_names("post_hoc") == ("cue_probe", "dfr")
    for settings, run in ((DFRSettings(), dfr_run), (CueProbeSettings(), cue_probe)):
        defaults = {k: p.default for k, p in inspect.signature(run).parameters.items()}
        assert {k: defaults[k] for k in dataclasses.asdict(settings)} == dataclasses.asdict(settings)
        assert get_method(settings.name).settings_cls is type(settings)
