"""Known-answer models for every candidate method: which maps point where the model is known to look.

Three models whose positive logit is known to depend on one region only:

- **box**: a classifier whose CAM layer ``features = conv(x) + bias`` is nonzero everywhere, air included, but
  only the features of a box reach the GAP + linear head. Pass: at least 0.9 of the map's energy in the box,
  and no more of it in the air (pixels where the image is 0) than the air's share of the image.
- **gate**: the registry's ``seg_gated_swin`` (tiny) with its segmenter's gate replaced by a fixed disc (1 inside,
  0 outside): pixels outside the disc cannot change the logit. Maps at Swin stage 0, the audit's layer. Pass:
  less than 0.01 of the energy outside the disc.
- **cue**: two images that differ only in a thin ring (the cue); the logit reads the ring's features only.
  Pass: (share of the energy on the ring) / (ring's share of the image) at least 3.

:data:`mtlswin.explain.known_answers.KNOWN_ANSWER_PASSES` records the measured outcome per method; the tests assert
it, so a change in any method's behaviour shows up here. Each family's chosen default (:mod:`mtlswin.explain.defaults`)
passes the checks its family requires, unless the family is marked as having no method that is evidence.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from torch import nn

from mtlswin.explain.attribution import METHODS, attribute
from mtlswin.explain.known_answers import KNOWN_ANSWER_PASSES, required_checks
from mtlswin.models import create_model, test_overrides

SIZE, CELL = 32, 2  # images 32 x 32; the CAM layer of the hand-built models has 2 x 2 pixel cells (16 x 16)


def disc(radius: float, center: tuple[float, float] = ((SIZE - 1) / 2, (SIZE - 1) / 2), size: int = SIZE):
    """Boolean ``(size, size)`` disc."""
    yy, xx = np.mgrid[:size, :size]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def energy_share(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per-image share of the map's sum inside ``region``; NaN for an all-zero map (it points nowhere)."""
    total = maps.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (maps * region).sum(axis=(1, 2)) / total, np.nan)


class RegionClassifier(nn.Module):
    """``features = conv_2x2/2(x) + bias`` (B, 4, 16, 16), > 0 everywhere; ``logits = Linear(mean(features * region))``.

    ``region (16, 16)``: the cells whose features reach the head; the positive logit grows with every feature.
    """

    def __init__(self, region_cells: np.ndarray) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.features = nn.Conv2d(1, 4, CELL, stride=CELL)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.features.weight.copy_((0.5 + torch.rand(4, 1, CELL, CELL, generator=generator)) / CELL**2)
            self.features.bias.fill_(0.5)
            self.head.weight.copy_(torch.tensor([[-1.0, -0.5, -2.0, -1.0], [1.0, 0.5, 2.0, 1.0]]))
            self.head.bias.zero_()
        self.register_buffer("region", torch.from_numpy(region_cells).float())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(x)  # B, 4, 16, 16
        return {"logits": self.head((features * self.region).mean(dim=(2, 3)))}

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.features]

    cam_reshape = None


def cells_to_pixels(cells: np.ndarray) -> np.ndarray:
    return np.kron(cells, np.ones((CELL, CELL))).astype(bool)


def tissue_images(n: int, seed: int) -> torch.Tensor:
    """``n`` textured discs (values 0.3-1) in air (0): ``(n, 1, SIZE, SIZE)``."""
    texture = 0.3 + 0.7 * torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    return texture * torch.from_numpy(disc(15.0)).float()


def box_check(method: str) -> tuple[bool, dict[str, np.ndarray]]:
    """Box (rows 8-19, columns 14-25: upper right of the centre) read by :class:`RegionClassifier`."""
    box_cells = np.zeros((SIZE // CELL,) * 2, dtype=bool)
    box_cells[4:10, 7:13] = True
    box = cells_to_pixels(box_cells)
    images = tissue_images(2, seed=1)
    air = images[:, 0].numpy() == 0
    maps = attribute(RegionClassifier(box_cells), images, method=method)
    in_box = energy_share(maps, box)
    in_air = np.array([energy_share(m[None], a)[0] for m, a in zip(maps, air)])
    air_area = air.mean(axis=(1, 2))
    passed = bool(np.all(in_box >= 0.9) and np.all(in_air <= air_area))
    return passed, {"in_box": in_box, "in_air": in_air, "air_area": air_area}


def gate_check(method: str) -> tuple[bool, dict[str, np.ndarray]]:
    """``seg_gated_swin`` with the gate fixed to a disc off the centre and off the token grid."""
    torch.manual_seed(0)
    model = create_model("seg_gated_swin", **test_overrides("seg_gated_swin"))
    inside = disc(8.0, center=(12.5, 18.5))
    gate = torch.from_numpy(inside).float()[None, None]
    model.gate = lambda x: gate.to(x)  # instance attribute: replaces the segmenter's gate
    images = 0.2 + 0.8 * torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    maps = attribute(model, images, method=method, stage=0)
    outside = energy_share(maps, ~inside)
    return bool(np.all(outside < 0.01)), {"outside": outside}


def cue_check(method: str) -> tuple[bool, dict[str, np.ndarray]]:
    """A one-cell ring (radius 5-6 cells): cue absent (0.5) in one image, present (0.9) in the other."""
    yy, xx = np.mgrid[: SIZE // CELL, : SIZE // CELL]
    radius = np.hypot(yy - 7.5, xx - 7.5)
    ring_cells = (radius >= 5.0) & (radius < 6.0)
    ring = torch.from_numpy(cells_to_pixels(ring_cells))
    base = tissue_images(1, seed=3)[0]
    images = torch.stack([torch.where(ring, torch.tensor(value), base) for value in (0.5, 0.9)])
    assert torch.equal(images[0][:, ~ring], images[1][:, ~ring])  # the two images differ on the ring only
    maps = attribute(RegionClassifier(ring_cells), images, method=method)
    ratio = energy_share(maps, ring.numpy()) / ring.numpy().mean()
    return bool(np.all(ratio >= 3)), {"ratio": ratio}


CHECKS = {"box": box_check, "gate": gate_check, "cue": cue_check}


@cache
def known_answer(case: str, method: str) -> tuple[bool, dict[str, np.ndarray]]:
    return CHECKS[case](method)


def test_the_table_covers_every_candidate() -> None:
    assert set(KNOWN_ANSWER_PASSES) == set(CHECKS)
    assert all(tuple(passes) == METHODS for passes in KNOWN_ANSWER_PASSES.values())


@pytest.mark.parametrize("case", list(CHECKS))
@pytest.mark.parametrize("method", METHODS)
def test_known_answer_outcome_is_the_recorded_one(case: str, method: str) -> None:
    passed, numbers = known_answer(case, method)
    assert passed is KNOWN_ANSWER_PASSES[case][method], (case, method, numbers)


def test_chosen_defaults_pass_the_known_answers_their_family_requires() -> None:
    """A family's default passes its required checks, or the family is marked "not evidence" and then its default
    really fails one (so neither mark can be wrong without this test failing)."""
    from mtlswin.explain.defaults import DEFAULT_METHODS, NOT_EVIDENCE

    for family, method in DEFAULT_METHODS.items():
        outcome = {case: known_answer(case, method)[0] for case in required_checks(family)}
        if family in NOT_EVIDENCE:
            assert not all(outcome.values()), (family, method, outcome)
        else:
            assert all(outcome.values()), (family, method, outcome)
