"""Known-answer tests of the losses (SPEC "Losses", reference README Dice)."""

from __future__ import annotations

import math

import pytest
import torch

from mtlswin.training.losses import MultitaskLoss, default_loss_weights, dice_loss, segmentation_loss

EPS = 1e-5


def _uniform_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits 0 everywhere (p = 0.5 for both classes) on a 2x2 slice with one hematoma pixel."""
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    mask = torch.tensor([[[1, 0], [0, 0]]])
    return logits, mask


def _expected_dice() -> float:
    # class 0: sum(p*t)=1.5, sum(p^2)=1, sum(t^2)=3; class 1: 0.5, 1, 1
    d0 = 1 - (2 * 1.5 + EPS) / (1 + 3 + EPS)
    d1 = 1 - (2 * 0.5 + EPS) / (1 + 1 + EPS)
    return (d0 + d1) / 2


def test_dice_known_answer():
    logits, mask = _uniform_case()
    assert dice_loss(logits, mask).item() == pytest.approx(_expected_dice(), abs=1e-7)
    assert _expected_dice() == pytest.approx(0.375, abs=1e-5)


def test_dice_of_a_perfect_prediction_is_zero():
    mask = torch.tensor([[[1, 0], [0, 1]]])
    logits = torch.nn.functional.one_hot(mask, 2).permute(0, 3, 1, 2).float() * 50.0
    assert dice_loss(logits, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_segmentation_loss_is_04_ce_plus_06_dice():
    logits, mask = _uniform_case()
    loss = segmentation_loss(logits, mask, torch.tensor([True]))
    assert loss.item() == pytest.approx(0.4 * math.log(2) + 0.6 * _expected_dice(), abs=1e-6)


def test_segmentation_loss_averages_over_masked_samples_only():
    logits, mask = _uniform_case()
    other = torch.randn(1, 2, 2, 2) * 5  # an unmasked sample: whatever it predicts must not count
    both = torch.cat([logits.detach(), other])
    masks = torch.cat([mask, torch.zeros_like(mask)])
    loss = segmentation_loss(both, masks, torch.tensor([True, False]))
    assert loss.item() == pytest.approx(0.4 * math.log(2) + 0.6 * _expected_dice(), abs=1e-6)


def test_batch_without_masks_gives_exact_zero_in_the_graph():
    logits = torch.randn(3, 2, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, torch.zeros(3, 4, 4, dtype=torch.long), torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_multitask_loss_paper_weights_and_parts():
    seg_logits, mask = _uniform_case()
    image = torch.full((1, 1, 2, 2), 0.5)
    outputs = {"logits": torch.zeros(1, 2), "seg": seg_logits, "rec": image + 0.1}
    batch = {"image": image, "label": torch.tensor([1]), "mask": mask, "has_mask": torch.tensor([True])}
    total, parts = MultitaskLoss(("cls", "seg", "rec"))(outputs, batch)
    seg = 0.4 * math.log(2) + 0.6 * _expected_dice()
    assert parts["cls"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert parts["seg"].item() == pytest.approx(seg, abs=1e-6)
    assert parts["rec"].item() == pytest.approx(0.01, abs=1e-6)
    assert total.item() == pytest.approx(0.3 * math.log(2) + 0.4 * seg + 0.4 * 0.01, abs=1e-6)


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (("cls", "seg", "rec"), {"cls": 0.3, "seg": 0.4, "rec": 0.4}),
        (("cls", "seg"), {"cls": 0.4, "seg": 0.6}),
        (("cls", "rec"), {"cls": 0.4, "rec": 0.6}),
        (("cls",), {"cls": 1.0}),
        (("seg",), {"seg": 1.0}),
    ],
)
def test_default_weights_per_task_subset(tasks, expected):
    assert default_loss_weights(tasks) == expected


def test_uncertainty_weighting_formula():
    loss = MultitaskLoss(("cls", "rec"), uncertainty=True)
    with torch.no_grad():
        loss.log_vars.copy_(torch.tensor([math.log(2.0), 0.0]))
    outputs = {"logits": torch.zeros(1, 2), "rec": torch.full((1, 1, 2, 2), 0.6)}
    batch = {"image": torch.full((1, 1, 2, 2), 0.5), "label": torch.tensor([0])}
    total, _ = loss(outputs, batch)
    # exp(-s) * L + s per task
    assert total.item() == pytest.approx(0.5 * math.log(2) + math.log(2) + 0.01, abs=1e-6)
    total.backward()
    assert loss.log_vars.grad is not None


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="tasks"):
        MultitaskLoss(("cls", "depth"))
    with pytest.raises(ValueError, match="lack task"):
        MultitaskLoss(("cls", "seg"), weights={"cls": 1.0})
