"""ROAD faithfulness: rank transform, ordering of maps of known faithfulness, repeatability, RNG left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mtlswin.explain.faithfulness import rank_maps, road_scores

SIZE = 32
BOX = (slice(4, 14), slice(18, 28))


class BoxReader(nn.Module):
    """``logits = [0, 10 * (mean of x over the box - 0.6)]``: only the box's pixels matter."""

    def __init__(self) -> None:
        super().__init__()
        weight = torch.zeros(1, 1, SIZE, SIZE)
        weight[(..., *BOX)] = 1.0
        self.read = nn.Conv2d(1, 1, SIZE, bias=False)
        with torch.no_grad():
            self.read.weight.copy_(weight / weight.sum())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        score = 10 * (self.read(x).flatten(1) - 0.6)  # B, 1
        return {"logits": torch.cat([torch.zeros_like(score), score], dim=1)}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """A bright box (0.9) on a grey background (0.3), both with a little texture."""
    generator = torch.Generator().manual_seed(0)
    x = 0.3 + 0.05 * torch.rand(3, 1, SIZE, SIZE, generator=generator)
    x[(..., *BOX)] += 0.6
    return x


def box_map(n: int) -> np.ndarray:
    maps = np.zeros((n, SIZE, SIZE), dtype=np.float32)
    maps[(slice(None), *BOX)] = 1.0
    return maps


def test_rank_maps_gives_distinct_values_in_unit_range_in_the_maps_order() -> None:
    maps = np.zeros((2, 8, 8))
    maps[0, :2] = 0.5
    maps[1] = np.random.default_rng(1).random((8, 8))
    ranks = rank_maps(maps, seed=0)
    assert ranks.dtype == np.float32 and ranks.shape == maps.shape
    for rank, values in zip(ranks, maps):
        np.testing.assert_array_equal(np.sort(rank.ravel()), (np.arange(64) / 63).astype(np.float32))
        assert (np.diff(values.ravel()[np.argsort(rank.ravel())]) >= 0).all()  # ranks follow the values
    assert (ranks[0, :2] > ranks[0, 2:].max()).all()  # the 16 pixels at 0.5 rank above the 48 zeros


def test_ties_are_broken_at_random_with_a_fixed_seed() -> None:
    zeros = np.zeros((1, 8, 8))
    np.testing.assert_array_equal(rank_maps(zeros, seed=0), rank_maps(zeros, seed=0))
    assert not np.array_equal(rank_maps(zeros, seed=0), rank_maps(zeros, seed=1))


def test_ranks_remove_the_same_share_of_pixels_whatever_the_zeros() -> None:
    # ROAD keeps the pixels below the p-th percentile of the map: an all-zero map would keep none.
    zeros, distinct = np.zeros((1, SIZE, SIZE)), np.arange(SIZE * SIZE, dtype=float).reshape(1, SIZE, SIZE)
    kept = [int((r < np.percentile(r, 20)).sum()) for r in (rank_maps(zeros), rank_maps(distinct))]
    assert kept == [205, 205]  # ceil(0.2 * 1023): 80 % removed either way
    assert int((zeros < np.percentile(zeros, 20)).sum()) == 0


def test_the_map_of_what_the_model_reads_is_the_most_faithful(images) -> None:
    model = BoxReader()
    on_box = road_scores(model, images, box_map(3))
    off_box = road_scores(model, images, 1 - box_map(3))
    random = road_scores(model, images, np.random.default_rng(0).random((3, SIZE, SIZE)))
    assert on_box.shape == (3,) and on_box.dtype == np.float64
    assert (on_box > 0.4).all() and (off_box < -0.3).all(), (on_box, off_box)
    assert (on_box > random + 0.2).all() and (random > off_box + 0.2).all(), (on_box, random, off_box)


def test_scores_repeat_and_the_global_random_state_is_left_alone(images) -> None:
    model = BoxReader().train()
    maps = np.random.default_rng(0).random((3, SIZE, SIZE))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = road_scores(model, images, maps, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(first, road_scores(model, images, maps, seed=0))
    assert not np.array_equal(first, road_scores(model, images, maps, seed=1))  # another noise draw
    assert model.training


def test_maps_must_match_the_images(images) -> None:
    with pytest.raises(ValueError, match=r"maps must be \(N, H, W\)"):
        road_scores(BoxReader(), images, box_map(2))
