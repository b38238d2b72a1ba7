"""``benchmarks/gpu_check.sh`` in its CPU dry run: every step runs and succeeds.

The script runs on a lent GPU with minutes of device time and no second chance: a typo or a stale CLI
argument in it must fail here, not there (one did: its training step passed its overrides to a single
``--set``). Speed is not asserted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"


def test_gpu_check_dry_run_passes_every_step(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "MTLSWIN_CPU_SMOKE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=900, env=env, cwd=SCRIPT.parents[1])  # fmt: skip
    log = proc.stdout + proc.stderr
    steps = re.findall(r"^===== (.+?): (\d+ s|FAILED.*|TIMED OUT.*)$", log, flags=re.M)
    assert len(steps) == 8, log[-5000:]
    assert all(result.endswith(" s") for _, result in steps), steps
    assert proc.returncode == 0, log[-5000:]
    assert "device-cache" in log  # the end-to-end rows with the device cache ran
    assert (tmp_path / "out" / "runs" / "mtl_cls_seg_rec" / "metrics.json").is_file()  # CLI train + evaluate
    assert re.search(r"^----- 2 run\(s\) per GPU: 2 runs in \d+ s, \d+ demo runs per hour$", log, flags=re.M), log[
        -3000:
    ]
