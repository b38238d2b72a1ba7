"""Known-answer tests of the poly learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from mtlswin.training.schedule import build_optimizer, poly_lr, poly_scheduler


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
    sched = poly_scheduler(opt, max_iter=40)
    for it in range(40):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.004 * (1 - it / 40) ** 0.9, rel=1e-12)
        opt.step()
        sched.step()


def test_scheduler_state_resumes_the_same_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([param], lr=0.01)
    sched = poly_scheduler(opt, max_iter=10)
    for _ in range(4):
        opt.step()
        sched.step()
    opt2 = build_optimizer([param], lr=0.01)
    sched2 = poly_scheduler(opt2, max_iter=10)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(poly_lr(0.01, 4, 10))


def test_max_iter_must_be_positive():
    with pytest.raises(ValueError, match="max_iter"):
        poly_lr(0.01, 0, 0)
