"""``benchmarks/train.py --demo`` (``benchmarks/demo_rows.py``): the FLOP count it divides by, and one timed run.

No timing is asserted: the FLOPs are exact counts of the demo configs, and a timed run must report the steps and
images it trained.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo_rows(benchmark_module):
    return benchmark_module("demo_rows")


def test_flops_per_training_image_of_the_demo_configs(demo_rows):
    # forward + loss + backward of one batch of 32 at 64 px, per image (the 32.9 and 60.2 MFLOP)
    assert demo_rows.flops_per_image("swin") / 1e6 == pytest.approx(32.9, abs=0.05)
    assert demo_rows.flops_per_image("mtl_cls_seg") / 1e6 == pytest.approx(60.2, abs=0.05)


def test_matmul_rate_is_positive_and_restores_the_thread_count(demo_rows):
    import torch

    before = torch.get_num_threads()
    assert demo_rows.sgemm_gflops(1, n=128, repeats=3) > 0
    assert torch.get_num_threads() == before


def test_one_timed_run_reports_what_it_trained(demo_rows, tiny_data, tmp_path):
    data = Path(tiny_data.manifest).parent
    assert (data / "splits.csv").is_file()
    result = demo_rows.one("swin", data, epochs=1, threads=1, cache=tmp_path / "cache", work=tmp_path / "work")
    assert result["row"] == "swin" and result["seconds"] > 0
    assert result["steps"] >= 1 and result["images"] == result["steps"] * 32
    assert (tmp_path / "work" / "runs" / "swin" / "model.safetensors").is_file()
