"""Demo rows of ``benchmarks/train.py --demo``: end-to-end training throughput of the demo configs.

What is timed is what ``make demo`` runs: ``mtlswin.training.train.train`` on ``configs/demo/<row>.yaml``
(``swin``, ``mtl_cls_seg``), validation every epoch and a checkpoint every 50 steps included, for
``--epochs`` epochs of the demo phantom; start-up (imports, the image cache) is not timed, the input
statistics, model build, fit and export are. Each measurement runs in a fresh process at ``--threads``
threads (one: the demo trains two runs side by side with one thread each).

``--ours-set KEY=VALUE`` (repeatable): config overrides for our runs only (e.g. ``trainer.compile=true``). Before
the timed runs each code trains every row for two untimed steps, which builds the image cache and fills
inductor's on-disk cache, as the first run of a model shape does in a demo.

``--compare SRC``: the same rows with another checkout's code (``SRC/src`` first on ``PYTHONPATH``, its own
``configs/demo``), alternating ours and theirs ``--repeats`` times, so that a machine's drift hits both
alike; the table gives the median of each and the ratio. Nothing else may run on the machine meanwhile.

Also printed: FLOPs per training image (``torch.utils.flop_counter``: forward and backward of one batch,
AdamW not counted), the measured float32 matmul rate at the same thread count (a 1024 x 1024 ``mm``, best
of 20), and each row's GFLOP/s and share of that rate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEMO_ROWS = ("swin", "mtl_cls_seg")


def sgemm_gflops(threads: int, n: int = 1024, repeats: int = 20) -> float:
    """Best float32 ``mm`` rate (GFLOP/s) of two ``n x n`` matrices at ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(before)
    return 2 * n**3 / best / 1e9


def flops_per_image(row: str, batch: int = 32) -> float:
    """FLOPs of one training batch (forward + loss + backward) of the demo ``row`` over the batch size."""
    from torch.utils.flop_counter import FlopCounterMode

    from mtlswin.config import load_config
    from mtlswin.training.losses import MultitaskLoss
    from mtlswin.training.train import build_model

    config = load_config(REPO / "configs" / "demo" / f"{row}.yaml")
    model = build_model(config).train()
    size = int(config.model.options.get("img_size", 64))
    batch_data = {
        "image": torch.randn(batch, 1, size, size),
        "label": torch.randint(0, 2, (batch,)),
        "mask": torch.randint(0, 2, (batch, size, size)),
        "has_mask": torch.ones(batch, dtype=torch.bool),
    }
    loss_fn = MultitaskLoss(tuple(model.tasks))
    with FlopCounterMode(display=False) as counter:
        total, _ = loss_fn(model(batch_data["image"]), batch_data)
        total.backward()
    return counter.get_total_flops() / batch


def _config(row: str, data: Path, cache: Path, extra: list[str] = ()):
    """The demo ``row``'s config (from ``DEMO_ROWS_CONFIGS``, else ours) on ``data`` with the image cache ``cache``."""
    from mtlswin.config import load_config

    root = Path(os.environ.get("DEMO_ROWS_CONFIGS", REPO / "configs" / "demo"))
    return load_config(root / f"{row}.yaml", [
        f"data.manifest={data / 'manifest.csv'}", f"data.splits={data / 'splits.csv'}", f"data.cache_dir={cache}", *extra
    ])  # fmt: skip


def one(row: str, data: Path, epochs: int, threads: int, cache: Path, work: Path, extra: list[str] = ()) -> dict:
    """One timed ``train`` of the demo ``row`` in this process (the code on ``sys.path``); ``extra``: overrides."""
    torch.set_num_threads(threads)
    import pandas as pd

    from mtlswin.training.train import train

    config = _config(row, data, cache, [
        f"output.dir={work / 'runs'}", f"output.name={row}", f"train.epochs={epochs}",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *extra,
    ])  # fmt: skip
    start = time.perf_counter()
    train(config)
    seconds = time.perf_counter() - start
    log = pd.read_csv(config.run_dir / "logs" / "metrics.csv")
    steps = int(log["step"].max()) + 1
    auc = log["val/auc"].dropna() if "val/auc" in log else ()  # none in the warm-up (validation off)
    return {"row": row, "seconds": seconds, "steps": steps, "images": steps * config.data.batch_size,
            "val_auc": float(auc.iloc[-1]) if len(auc) else None}  # fmt: skip


def _child(row: str, data: Path, epochs: int, threads: int, checkout: Path, cache: Path, extra: list[str] = ()) -> dict:
    """:func:`one` in a fresh process running ``checkout``'s code and configs with the overrides ``extra``; ``epochs``
    0 trains two untimed steps only (the image cache and inductor's cache, as a demo has them before its runs)."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "DEMO_ROWS_CONFIGS": str(checkout / "configs" / "demo")}
    if epochs == 0:
        epochs, extra = 1, [*extra, "trainer.limit_train_batches=2", "trainer.limit_val_batches=0"]
    with tempfile.TemporaryDirectory(prefix="mtlswin-demo-row-") as tmp:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", row, str(data), str(epochs), str(threads),
               str(cache), tmp, *extra]  # fmt: skip
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(
    data: Path, epochs: int, threads: int, repeats: int, compare: Path | None, ours: list[str] = ()
) -> list[tuple[str, float]]:
    """Print the demo rows (and the comparison with ``compare``); ``ours``: overrides of our runs only; returns
    ``(label, img/s)`` rows."""
    peak = sgemm_gflops(threads)
    print(f"\nfloat32 mm 1024^3 at {threads} thread(s): {peak:.1f} GFLOP/s")
    checkouts = {"ours": REPO} | ({"theirs": compare.resolve()} if compare else {})
    rates: dict[tuple[str, str], list[float]] = {}
    aucs: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="mtlswin-demo-cache-") as tmp:  # keyed by content: shared by both codes
        cache = Path(tmp)
        extra = {"ours": list(ours), "theirs": []}
        for row in DEMO_ROWS:
            for name, checkout in checkouts.items():
                _child(row, data, 0, threads, checkout, cache, extra[name])
        for _ in range(repeats):
            for row in DEMO_ROWS:
                for name, checkout in checkouts.items():  # alternate: ours, theirs, ours, theirs, ...
                    r = _child(row, data, epochs, threads, checkout, cache, extra[name])
                    rates.setdefault((row, name), []).append(r["images"] / r["seconds"])
                    aucs.setdefault((row, name), []).append(r["val_auc"])
                    print(f"  {row} {name}: {r['steps']} steps in {r['seconds']:.1f} s, {r['images'] / r['seconds']:.0f} img/s,"
                          f" val AUC {r['val_auc']:.4f}", flush=True)  # fmt: skip
    print(f"\n| row | code | img/s (median of {repeats}) | MFLOP/img | GFLOP/s | share of mm | last val AUC |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for row in DEMO_ROWS:
        mflop = flops_per_image(row) / 1e6
        for name in checkouts:
            rate = statistics.median(rates[(row, name)])
            gflops = rate * mflop / 1e3
            print(f"| {row} | {name} | {rate:.0f} | {mflop:.1f} | {gflops:.1f} | {gflops / peak:.1%} | "
                  f"{', '.join(f'{a:.4f}' for a in aucs[(row, name)])} |")  # fmt: skip
            rows.append((f"demo {row} end-to-end ({name})", rate))
        if compare:
            ratio = statistics.median(rates[(row, "ours")]) / statistics.median(rates[(row, "theirs")])
            print(f"| {row} | ours / theirs | {ratio:.2f}x | | | | |")
    return rows


if __name__ == "__main__" and sys.argv[1:2] == ["--one"]:
    row_, data_, epochs_, threads_, cache_, work_ = sys.argv[2:8]
    print(json.dumps(one(row_, Path(data_), int(epochs_), int(threads_), Path(cache_), Path(work_), sys.argv[8:])))
