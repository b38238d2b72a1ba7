"""Where a demo training step spends its time (not a test): ``python benchmarks/profile_train.py MANIFEST SPLITS``.

Two views of the same demo config (``configs/demo/<row>.yaml``, default ``swin`` and ``mtl_cls_seg``), on a
phantom written by ``mtlswin synth`` / ``reproduce`` (its ``manifest.csv`` and ``splits.csv``):

1. **End to end through ``mtlswin train``** (the real ``train()``: data module with its cache, augmentation
   and loader, ``MTLModule``, Lightning's loop, loggers, callbacks and checkpoints) with Lightning's
   ``SimpleProfiler``: seconds per Lightning action (the loader's next batch, the training step, backward,
   the optimiser step, each callback hook: ``ModelCheckpoint``'s every-N-steps ``last.ckpt``, logging),
   ``--steps`` optimiser steps of one epoch, validation off.
2. **Operators** of ``--op-steps`` training steps (forward, loss, backward, AdamW) of the same module on real
   batches from the same loader, with ``torch.profiler``: the top operators by self CPU time.

Run it on a quiet machine: ``--threads`` sets torch's threads (the demo trains two runs side by side with
one thread each). Prints Markdown tables for docs/speed.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import re
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", help="a phantom's manifest.csv (e.g. runs/demo/data/seed-0/phantom/manifest.csv)")
    p.add_argument("splits", help="its splits.csv")
    p.add_argument("--rows", default="swin,mtl_cls_seg", help="demo config stems")
    p.add_argument("--steps", type=int, default=100, help="optimiser steps profiled end to end")
    p.add_argument("--op-steps", type=int, default=10, help="steps under torch.profiler")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=15)
    return p.parse_args(argv)


def _config(row: str, args: argparse.Namespace, out: Path, extra: list[str]):
    from mtlswin.config import load_config

    overrides = [f"data.manifest={Path(args.manifest).resolve()}", f"data.splits={Path(args.splits).resolve()}",
                 f"data.cache_dir={out / 'cache'}", f"output.dir={out}", f"output.name={row}",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                 f"trainer.limit_train_batches={args.steps}", "trainer.limit_val_batches=0", "train.epochs=1", *extra]  # fmt: skip
    return load_config(REPO / "src" / "mtlswin" / "configs" / "demo" / f"{row}.yaml", overrides)


def lightning_profile(row: str, args: argparse.Namespace, out: Path) -> tuple[str, float]:
    """The SimpleProfiler table of ``--steps`` steps of ``mtlswin train``, and the wall seconds of the run."""
    from mtlswin.training.train import train

    config = _config(row, args, out, ["trainer.profiler=simple"])
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)  # the profiler's summary goes to its logger at INFO
    logger = logging.getLogger("lightning.pytorch.profilers.profiler")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            train(config)
    finally:
        logger.removeHandler(handler)
    return buffer.getvalue(), time.perf_counter() - start


def _simple_rows(text: str, top: int) -> list[tuple[str, float, int, float, float]]:
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"[\d.]+", cells[1]):  # the header and "Total" (mean "-")
            continue
        rows.append((cells[0], float(cells[1]), int(float(cells[2])), float(cells[3]), float(cells[4].rstrip("% "))))
    rows.sort(key=lambda r: -r[3])
    return rows[:top]


def _train_settings() -> contextlib.AbstractContextManager:
    """The settings ``train`` runs its steps under, in the code being profiled: older checkouts have only the
    subnormal flush (the first round of the CPU speed work) or nothing (before it); profile each as it ran."""
    for module, name in (("mtlswin.training.train", "training_settings"),
                         ("mtlswin.training.denormals", "flushed_denormals")):  # fmt: skip
        try:
            return getattr(importlib.import_module(module), name)()
        except (ModuleNotFoundError, AttributeError):
            continue
    return contextlib.nullcontext()


def op_profile(row: str, args: argparse.Namespace, out: Path) -> str:
    """Top operators by self CPU time over ``--op-steps`` training steps of the module on real batches."""
    from mtlswin.training.module import MTLModule
    from mtlswin.training.schedule import build_optimizer
    from mtlswin.training.train import build_datamodule, build_model

    config = _config(row, args, out / "ops", [])
    data = build_datamodule(config)
    data.prepare_data()
    data.setup("fit")
    module = MTLModule(build_model(config), config.train)
    module.log = lambda *a, **k: None  # no trainer attached: logging is Lightning's cost, profiled above
    optimizer = build_optimizer(module.model, config.train.lr, config.train.momentum, config.train.weight_decay,
                                name=config.train.optimizer)  # fmt: skip
    batches = []
    for batch in data.dataloader("train", shuffle=True, augment=True):
        batches.append(batch)
        if len(batches) == args.op_steps + 2:
            break

    def step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        total, _ = module._step(batch, "train")
        total.backward()
        optimizer.step()

    for batch in batches[:2]:  # warm-up
        step(batch)
    with _train_settings():
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for batch in batches[2:]:
                step(batch)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    for row in args.rows.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            text, wall = lightning_profile(row, args, Path(tmp))
            print(f"\n### `{row}`: {args.steps} steps of `mtlswin train`, {args.threads} thread(s): {wall:.1f} s wall, "
                  f"{args.steps * 32 / wall:.0f} img/s end to end (including start-up)\n")  # fmt: skip
            print("| Lightning action | mean s | calls | total s | % |\n|---|---|---|---|---|")
            for name, mean, calls, total, share in _simple_rows(text, args.top):
                print(f"| {name} | {mean:.4f} | {calls} | {total:.2f} | {share:.1f} |")
            print(
                f"\nTop operators ({args.op_steps} steps, self CPU time):\n\n```\n{op_profile(row, args, Path(tmp))}```"
            )


if __name__ == "__main__":
    main()
