"""Overall progress of a schedule of training runs."""

from __future__ import annotations

from mtlswin.pipeline.executors.local import RunClock


def test_run_clock_estimates_the_time_left_from_mean_run_time_and_parallel_slots():
    clock = RunClock(5, jobs=2)
    assert clock.finished(120.0) == "1 of 5 runs done, about 4.0 min left"  # 120 s x 4 runs / 2 slots
    assert clock.finished(60.0) == "2 of 5 runs done, about 2.2 min left"  # 90 s x 3 / 2
    clock.finished(60.0)
    assert clock.finished(60.0) == "4 of 5 runs done, about 1.2 min left"  # one run left: one slot
    assert clock.finished(60.0) == "5 of 5 runs done"
