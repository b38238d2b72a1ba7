"""Known-answer tests of the optimisers and learning-rate schedules (poly, cosine, warm-up)."""

from __future__ import annotations

import math

import pytest
import torch

from mtlswin.training.schedule import LRFactor, build_optimizer, build_scheduler, poly_lr


def test_poly_lr_known_values():
    assert poly_lr(0.01, 0, 100) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)  # 0.0053589...
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.005358867, abs=1e-9)
    assert poly_lr(0.01, 90, 100) == pytest.approx(0.01 * 0.1**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0
    assert poly_lr(0.01, 120, 100) == 0.0


def test_scheduler_stepped_per_iteration_follows_the_formula():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([param], lr=0.004)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 1e-4
    sched = build_scheduler(opt, max_iter=40)
    for it in range(40):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.004 * (1 - it / 40) ** 0.9, rel=1e-12)
        opt.step()
        sched.step()


def test_scheduler_state_resumes_the_same_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([param], lr=0.01)
    sched = build_scheduler(opt, max_iter=10)
    for _ in range(4):
        opt.step()
        sched.step()
    opt2 = build_optimizer([param], lr=0.01)
    sched2 = build_scheduler(opt2, max_iter=10)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(poly_lr(0.01, 4, 10))


def test_max_iter_must_be_positive():
    with pytest.raises(ValueError, match="max_iter"):
        poly_lr(0.01, 0, 0)


def test_warmup_then_cosine_known_values():
    f = LRFactor(max_iter=110, schedule="cosine", warmup=10)
    assert [f(i) for i in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])  # linear warm-up reaches 1
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5)  # half-way through the cosine
    assert f(35) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert f(110) == pytest.approx(0.0, abs=1e-12) and f(500) == pytest.approx(0.0, abs=1e-12)


def test_warmup_then_poly_known_values():
    f = LRFactor(max_iter=20, schedule="poly", power=1.0, warmup=10)
    assert f(0) == pytest.approx(0.1) and f(10) == pytest.approx(1.0) and f(15) == pytest.approx(0.5)


def test_adamw_decays_weight_matrices_only_and_skips_frozen_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))
    model[2].requires_grad_(False)
    opt = build_optimizer(model, lr=5e-4, weight_decay=0.05, name="adamw")
    assert isinstance(opt, torch.optim.AdamW)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decay == {id(model[0].weight)}
    assert no_decay == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}


def test_sgd_keeps_the_papers_decay_on_every_trainable_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = build_optimizer(model, lr=0.01)
    assert isinstance(opt, torch.optim.SGD) and len(opt.param_groups) == 1
    assert len(opt.param_groups[0]["params"]) == 4 and opt.param_groups[0]["weight_decay"] == 1e-4


@pytest.mark.parametrize(("kwargs", "match"), [({"schedule": "step"}, "schedule"), ({"warmup": -1}, "warm-up")])
def test_bad_schedule_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LRFactor(max_iter=10, **kwargs)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], lr=0.1, name="adam")


def _mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 2))


def test_adamw_is_fused_on_cpu_and_trains_the_weights_of_the_for_loop_implementation():
    # the fused kernel (one call for all tensors) must train the same weights as torch's
    # per-tensor loop, to float rounding, over 50 steps with both weight-decay groups.
    from timm.optim import param_groups_weight_decay

    torch.manual_seed(0)
    model, loop = _mlp(), _mlp()
    loop.load_state_dict(model.state_dict())
    start = [p.detach().clone() for p in model.parameters()]
    fused = build_optimizer(model, lr=1e-2, weight_decay=0.05, name="adamw")
    assert fused.defaults["fused"] is True
    reference = torch.optim.AdamW(param_groups_weight_decay(loop, 0.05), lr=1e-2, weight_decay=0.05, foreach=False)
    x, y = torch.randn(64, 6), torch.randint(0, 2, (64,))
    for _ in range(50):
        for net, opt in ((model, fused), (loop, reference)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    travelled = max((p - s).abs().max().item() for p, s in zip(model.parameters(), start))
    differ = max((a - b).abs().max().item() for a, b in zip(model.parameters(), loop.parameters()))
    assert travelled > 0.1  # the weights moved far ...
    assert differ < 1e-6  # ... and both implementations moved them alike
