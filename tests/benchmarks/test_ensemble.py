"""``benchmarks/ensemble.py``: the vectorised ensemble it times is the separate runs' arithmetic.

No timing is asserted. What is tested is that the ensemble does K runs' work: after a few AdamW steps on each
member's own batches, every member's weights equal those of its model trained alone, and the members differ.
"""

from __future__ import annotations

import pytest

TINY = ["model.img_size=32", "model.embed_dim=8", "model.depths=[1,1]", "model.num_heads=[1,2]"]


@pytest.fixture(scope="module")
def ensemble(benchmark_module):
    return benchmark_module("ensemble")


@pytest.mark.parametrize("row", ["swin", "mtl_cls_seg"])
def test_ensemble_members_train_as_their_separate_models(ensemble, row):
    assert ensemble.ensemble_matches_separate(row, k=2, steps=3, overrides=TINY) < 1e-5


def test_ensemble_members_keep_their_own_initialisation(ensemble):
    members, config = ensemble.build_members("swin", 2, TINY)
    stacked = ensemble.Ensemble(members, config.train)
    first, second = stacked.member_state(0), stacked.member_state(1)
    assert any((first[name] - second[name]).abs().max() > 1e-3 for name in first)
    for name, p in members[1].named_parameters():
        assert (second[name] - p.detach()).abs().max() == 0
