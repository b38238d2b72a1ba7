"""``benchmarks/train.py --cpu-smoke`` runs every path (model only, end to end, ratios) and prints a sane table.

No timing is asserted: only that every row is there with a positive, finite rate.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "train.py"
ROWS = ["swin train", "swin infer", "mtl train", "mtl infer", "mtl infer cls-only",
        "swin train end-to-end", "mtl train end-to-end",
        "swin train end-to-end device-cache", "mtl train end-to-end device-cache"]  # fmt: skip


def test_cpu_smoke_prints_every_row_with_a_positive_rate():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--cpu-smoke", "--steps", "2", "--threads", "1", "--device-cache"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    found = re.findall(r"^(\w[\w -]*?)\s{2,}([-\w.+]+)(?:\s{2,}([\d.]+)-([\d.]+))?$", proc.stdout, flags=re.M)
    table = {label: (rate, lo, hi) for label, rate, lo, hi in found}
    for row in ROWS:
        assert row in table, (row, proc.stdout)
        rate = float(table[row][0])
        assert math.isfinite(rate) and rate > 0, (row, rate)
        if "end-to-end" not in row:  # model-only rows: the quartiles of the repetitions bracket the median
            lo, hi = float(table[row][1]), float(table[row][2])
            assert lo <= rate <= hi, (row, lo, rate, hi)
    assert "authors" not in table  # no --authors: their rows are skipped
    assert re.search(r"^cost: mtl infer cls-only vs swin infer\s+\d+\.\d+x", proc.stdout, flags=re.M)
    hours = re.findall(r"^projected (swin|mtl)( device-cache)?: ([\d.]+) h per paper row", proc.stdout, flags=re.M)
    assert [(k, v) for k, v, _ in hours] == [
        ("swin", ""),
        ("swin", " device-cache"),
        ("mtl", ""),
        ("mtl", " device-cache"),
    ]
    assert all(float(h) > 0 for _, _, h in hours)


def test_missing_authors_checkout_is_skipped_and_bad_models_refused(tmp_path, benchmark_module):
    bench = benchmark_module("train")
    args = bench.parse_args(["--cpu-smoke", "--authors", str(tmp_path / "absent")])
    assert bench.authors_fns(args, None, None) == {}
    assert (args.img_size, args.batch_size, args.workers) == (32, 4, 0)
    proc = subprocess.run([sys.executable, str(BENCH), "--models", "swin,vit"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown ['vit']" in proc.stderr
