"""Overall progress of a schedule of training runs."""

from __future__ import annotations

import pytest
from executor_helpers import recording_work

from mtlswin.pipeline.executors.local import RunClock, Slots, plan_slots, run_tasks, visible_gpus
from mtlswin.pipeline.schedule import TrainRun


def test_run_clock_estimates_the_time_left_from_mean_run_time_and_parallel_slots():
    clock = RunClock(5, jobs=2)
    assert clock.finished(120.0) == "1 of 5 runs done, about 4.0 min left"  # 120 s x 4 runs / 2 slots
    assert clock.finished(60.0) == "2 of 5 runs done, about 2.2 min left"  # 90 s x 3 / 2
    clock.finished(60.0)
    assert clock.finished(60.0) == "4 of 5 runs done, about 1.2 min left"  # one run left: one slot
    assert clock.finished(60.0) == "5 of 5 runs done"


def test_slots_are_jobs_on_a_cpu_and_runs_per_gpu_on_each_visible_gpu():
    assert plan_slots(3) == Slots(((None, 3),))
    assert plan_slots(3, runs_per_gpu=4) == Slots(((None, 3),))  # no GPU (a CPU preset): the --jobs slots
    two = plan_slots(1, runs_per_gpu=4, gpus=["0", "3"])
    assert two == Slots((("0", 4), ("3", 4))) and two.total == 8
    with pytest.raises(ValueError, match="at least 1"):
        plan_slots(1, runs_per_gpu=0, gpus=["0"])


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_runs_per_gpu_puts_at_most_n_runs_on_each_gpu_and_dependencies_first(tmp_path):
    runs = [TrainRun("r", k, tmp_path / f"r{k}-seed0", tmp_path / "c.yaml", ()) for k in range(6)]
    runs.append(TrainRun("j", 0, tmp_path / "j-seed0", tmp_path / "c.yaml", (), needs=("r0-seed0",)))
    slots = Slots((("0", 2), ("1", 1)))  # two runs share GPU 0, one has GPU 1
    lines: list[str] = []
    seconds = run_tasks(runs, slots, log=lines.append, work=recording_work)
    assert set(seconds) == {r.name for r in runs}
    seen = [(tmp_path / f"seen-{r.name}").read_text().split() for r in runs]
    for device, on_device, in_all, needs_done in seen:
        assert device in ("0", "1")  # each worker sees its GPU alone
        assert int(on_device) <= {"0": 2, "1": 1}[device] and int(in_all) <= 3 and needs_done == "True"
    assert {s[0] for s in seen} == {"0", "1"}
    assert sum("started" in line for line in lines) == 7 and "of 3 slots" in lines[0]
