"""ResumableSampler: DistributedSampler-compatible order, mid-epoch resume, epoch listeners."""

from __future__ import annotations

import pytest
from torch.utils.data import DistributedSampler

from mtlswin.data.sampler import ResumableSampler


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("rank", [0, 1, 2])
def test_same_order_as_distributed_sampler(rank, drop_last):
    ours = ResumableSampler(10, seed=3, num_replicas=3, rank=rank, drop_last=drop_last)
    ref = DistributedSampler(range(10), num_replicas=3, rank=rank, seed=3, drop_last=drop_last)
    for epoch in (0, 4):
        ours.set_epoch(epoch)
        ref.set_epoch(epoch)
        assert list(ours) == list(ref)
        assert len(ours) == len(ref)


def test_replicas_cover_every_index_and_epochs_differ():
    parts = [list(ResumableSampler(11, seed=0, num_replicas=2, rank=r)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == 6
    assert set(parts[0]) | set(parts[1]) == set(range(11))
    s = ResumableSampler(50, seed=0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first and sorted(s) == list(range(50))


@pytest.mark.parametrize("shuffle", [False, True])
def test_unpadded_shards_hold_every_index_exactly_once(shuffle):
    parts = [ResumableSampler(11, seed=2, shuffle=shuffle, num_replicas=3, rank=r, pad=False) for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 3]  # 11 = 4 + 4 + 3: nothing repeated to even them out
    indices = [i for p in parts for i in p]
    assert sorted(indices) == list(range(11))
    padded = [i for r in range(3) for i in ResumableSampler(11, seed=2, shuffle=shuffle, num_replicas=3, rank=r)]
    assert len(padded) == 12 and len(set(padded)) == 11  # the default repeats one index


def test_set_start_skips_prefix_once():
    s = ResumableSampler(20, seed=5)
    s.set_epoch(2)
    full = list(s)
    s.set_start(7)
    assert len(s) == 13
    assert list(s) == full[7:]
    assert list(s) == full  # the skip applies to one iteration only
    with pytest.raises(ValueError, match="start must be in"):
        s.set_start(21)


def test_unshuffled_and_listeners():
    seen = []
    s = ResumableSampler(5, seed=0, shuffle=False)
    s.add_epoch_listener(seen.append)
    s.set_epoch(3)
    assert list(s) == [0, 1, 2, 3, 4] and seen == [3]


def test_bad_rank_rejected():
    with pytest.raises(ValueError, match="rank must be in"):
        ResumableSampler(5, num_replicas=2, rank=2)
