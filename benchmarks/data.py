"""Data throughput: first-pass DICOM decode + window + resize, and cached loading with augmentation.

Writes ``--n`` 512x512 int16 CT DICOM files (pydicom's real head slice ``693_UNCR.dcm`` plus noise,
so every file differs) into a temp folder, then measures slices/s of

1. first pass, one process: ``load_slice`` (pydicom decode -> HU -> window 40/80) + resize to 224;
2. ``mtlswin prepare`` (``build_cache``) with 0 and 2 decoding workers;
3. cached loading with the paper's augmentation through a DataLoader, 2 workers, batch 64
   (persistent workers, first epoch excluded as warm-up).

Targets on the 2-core dev machine: first pass >= 150 slices/s, cached >= 1,000 slices/s.
Run: ``.venv/bin/python benchmarks/data.py [--n 512] [--epochs 6]``. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydicom import dcmread
from pydicom.data import get_testdata_file

from mtlswin.data import load_slice
from mtlswin.data.cache import build_cache
from mtlswin.data.datamodule import CTDataModule
from mtlswin.data.manifest import read_manifest
from mtlswin.data.transforms import resize_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' DICOM fixture
from data_fixtures import write_ct_dicom


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children (DataLoader workers, once joined)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, n: int) -> tuple[float, float]:
    """(slices per wall second, CPU milliseconds per slice) of ``fn()`` processing ``n`` slices."""
    gc.collect()
    wall, cpu = time.perf_counter(), cpu_seconds()
    count = fn() or n
    gc.collect()
    return count / (time.perf_counter() - wall), (cpu_seconds() - cpu) * 1000 / count


def write_dicoms(root: Path, n: int, base_file: str | None = None) -> Path:
    base = dcmread(base_file or get_testdata_file("693_UNCR.dcm")).pixel_array.astype(np.int32)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        stored = np.clip(base + rng.integers(-5, 6, base.shape), -32768, 32767).astype(np.int16)
        write_ct_dicom(root / f"{i:05d}.dcm", stored, intercept=-1024, patient_id=f"p{i // 40}")
        rows.append({"image": f"{i:05d}.dcm", "mask": "", "patient_id": f"p{i // 40}", "hospital": 1 + i % 4,
                     "hypodensity": i % 5 == 0})  # fmt: skip
    pd.DataFrame(rows).astype({"hypodensity": int}).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def first_pass(paths: list[Path], size: int) -> None:
    for p in paths:
        resize_image(load_slice(p, (40, 80)), size)  # no mask, as in a build


def cached_loading(root: Path, manifest_path: Path, size: int, epochs: int, workers: int, batch: int):
    """The training path: ``CTDataModule(cache_dir=...).train_dataloader()`` (ResumableSampler, paper
    augmentation, persistent workers). Epoch 0 warms up; the next ``epochs`` are timed, workers' CPU included."""
    splits = pd.DataFrame({"index": range(len(pd.read_csv(manifest_path))), "split": "train"})
    splits.to_csv(root / "splits.csv", index=False)
    dm = CTDataModule(manifest_path, root / "splits.csv", img_size=size, batch_size=batch, num_workers=workers,
                      augment="paper", cache_dir=root / f"cache{workers}")  # fmt: skip
    loader = dm.train_dataloader()
    for _ in loader:
        pass
    warm_cpu = cpu_seconds()  # workers still alive: their warm-up CPU is not yet in RUSAGE_CHILDREN
    wall, count = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        dm.train_sampler.set_epoch(epoch)
        count += sum(len(b["image"]) for b in loader)
    wall = time.perf_counter() - wall
    del loader, dm  # joins the workers, so their CPU time is counted
    gc.collect()
    cpu = cpu_seconds() - warm_cpu
    return count / wall, cpu * 1000 / (count * (epochs + 1) / epochs)  # warm-up epoch's worker CPU spread out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="number of DICOM files")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=6, help="timed epochs of cached loading")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--base", default=None, help="DICOM to copy (default: pydicom-data's 693_UNCR.dcm)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest_path = write_dicoms(root, args.n, args.base)
        manifest = read_manifest(manifest_path)
        paths = sorted(root.glob("*.dcm"))
        rows = [("first pass: decode+window+resize, 1 process", *timed(lambda: first_pass(paths, args.size), args.n))]
        for workers in (0, args.workers):
            fn = lambda w=workers: build_cache(manifest, root / f"cache{w}", args.size, "uint8", (40, 80), w) and None  # noqa: E731
            rows.append((f"prepare (build_cache, hashing included), {workers} workers", *timed(fn, args.n)))
        speed = cached_loading(root, manifest_path, args.size, args.epochs, args.workers, args.batch)
        rows.append((f"cached + paper augmentation, DataLoader {args.workers} workers, batch {args.batch}", *speed))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(os.sched_getaffinity(0))} CPUs usable, "
          f"load average {os.getloadavg()[0]:.1f}; {args.n} slices 512x512 int16 -> {args.size}")  # fmt: skip
    print(f"{'measurement':<72} {'slices/s':>9} {'CPU ms/slice':>13}")
    for name, speed, cpu_ms in rows:
        print(f"{name:<72} {speed:>9.0f} {cpu_ms:>13.2f}")


if __name__ == "__main__":
    main()
