"""What a run does with its data before the first step (not a test): ``python benchmarks/startup.py --data PHANTOM``.

Times, with the image cache already built (as for every run of a demo after the first), what ``train`` does with
the data before it trains: the data module's ``setup`` (manifest read, the cache's key over every file, splits),
the train split's input statistics, Lightning's ``prepare_data`` and the validation dataset. ``PHANTOM`` is a
folder with ``manifest.csv`` and ``splits.csv`` (e.g. a copy of ``runs/demo/data/seed-0/phantom`` with the
draw's ``splits.csv``). ``--copies K`` also times a manifest of K times its rows (each copy reaches the same
files through its own folder link, so the cache holds K times the slices): how start-up grows with a data set.

``--compare SRC`` times another checkout's code (``SRC/src`` first on ``PYTHONPATH``) alternately with ours.
Each measurement runs in a fresh process; the first of each process (it may build the cache) is not counted.
Nothing else may run on the machine meanwhile. Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(root: Path, cache: Path, repeats: int) -> list[float]:
    """Seconds of each of ``repeats + 1`` data start-ups in this process (the first may build the cache)."""
    import torch

    from mtlswin.data.datamodule import CTDataModule
    from mtlswin.data.stats import pixel_stats

    torch.set_num_threads(1)
    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        data = CTDataModule(root / "manifest.csv", root / "splits.csv", img_size=64, num_workers=0, cache_dir=cache)
        pixel_stats(data.dataset("train", augment=False))  # train() resolves the input statistics first
        data.prepare_data()  # then Lightning prepares and sets up
        data.setup("fit")
        data.dataset("val")
        seconds.append(time.perf_counter() - start)
    return seconds


def copies(data: Path, k: int, out: Path) -> Path:
    """A manifest of ``k`` copies of ``data``'s rows under ``out``, copy j reaching the files through ``out/cj``."""
    import pandas as pd

    table = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False)
    splits = pd.read_csv(data / "splits.csv")
    tables, parts = [], []
    for j in range(k):
        (out / f"c{j}").symlink_to(data.resolve(), target_is_directory=True)
        part = table.copy()
        for col in ("image", "mask", "twin"):
            if col in part:
                part[col] = [f"c{j}/{v}" if v else "" for v in part[col]]
        part["patient_id"] = part["patient_id"] + f"-c{j}"
        tables.append(part)
        parts.append(splits.assign(index=splits["index"] + j * len(table)))
    pd.concat(tables).to_csv(out / "manifest.csv", index=False)
    pd.concat(parts).to_csv(out / "splits.csv", index=False)
    return out


def _child(checkout: Path | None, root: Path, cache: Path, repeats: int) -> list[float]:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout / "src")
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import startup; " \
           f"print(startup.measure(startup.Path({str(root)!r}), startup.Path({str(cache)!r}), {repeats}))"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in done.stdout.strip().splitlines()[-1].strip("[]").split(",")][1:]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="folder with manifest.csv and splits.csv")
    p.add_argument("--copies", type=int, default=5, help="also a manifest of this many copies of the rows (0: no)")
    p.add_argument("--repeats", type=int, default=3, help="timed start-ups per process")
    p.add_argument("--rounds", type=int, default=2, help="processes per code, alternating with --compare")
    p.add_argument("--compare", type=Path, default=None, help="another checkout, timed alternately with ours")
    args = p.parse_args(argv)
    codes = {"ours": None} | ({"theirs": args.compare} if args.compare else {})
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"as given": args.data.resolve()}
        if args.copies > 1:
            sets[f"{args.copies} copies"] = copies(args.data, args.copies, Path(tmp))
        print("| manifest | rows | code | seconds (each start-up) | median |\n|---|---|---|---|---|")
        for name, root in sets.items():
            rows = sum(1 for _ in open(root / "manifest.csv")) - 1
            cache = Path(tmp) / f"cache-{rows}"
            seconds: dict[str, list[float]] = {code: [] for code in codes}
            for _ in range(args.rounds):
                for code, checkout in codes.items():
                    seconds[code] += _child(checkout, root, cache, args.repeats)
            for code, values in seconds.items():
                shown = ", ".join(f"{v:.2f}" for v in values)
                print(f"| {name} | {rows} | {code} | {shown} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
