"""Phantom benchmark: generation speed and the shortcut check at demo scale. Prints tables; asserts nothing.

.venv/bin/python benchmarks/phantom.py [--slices N] [--size 256] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from mtlswin.data.phantom.generate import SynthConfig, iter_slices
from mtlswin.data.phantom.shortcut import global_features, shortcut_aucs
from mtlswin.data.phantom.writer import write_dataset


def speed(config: SynthConfig, out: str) -> None:
    n = sum(config.counts())
    start = time.perf_counter()
    for _ in iter_slices(config):
        pass
    mem = time.perf_counter() - start
    start = time.perf_counter()
    write_dataset(config, out)
    disk = time.perf_counter() - start
    print(
        f"| {config.preset} | {n} | {config.image_size} | {mem:.1f} s ({n / mem:.1f}/s) | {disk:.1f} s ({n / disk:.1f}/s) |"
    )


def shortcut(config: SynthConfig) -> None:
    feats, labels, inside = [], [], []
    for rec in iter_slices(config):
        feats.append(global_features(rec.hu))
        labels.append(rec.labels["hypodensity"])
        inside.append(rec.hospital in config.cue_hospitals)
    auc_in, auc_out = shortcut_aucs(np.array(feats), np.array(labels), np.array(inside))
    labels, inside = np.array(labels), np.array(inside)
    print(f"| {config.spurious} | {inside.sum()} ({labels[inside].mean():.3f}) | {(~inside).sum()} "
          f"({labels[~inside].mean():.3f}) | {auc_in:.3f} | {auc_out:.3f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=None, help="default: the demo preset (1,400)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    config = SynthConfig(preset="demo", slices=args.slices, size=args.size, seed=args.seed)
    print("| preset | slices | size | in memory | written (DICOM+PNG+manifest) |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        speed(config, args.out or tmp)
    print("\nLogistic regression on global CSF statistics (trained on hospitals 1-4; AUC 5-fold CV there)")
    print("| spurious | slices 1-4 (hypo rate) | slices 5-11 (hypo rate) | AUC 1-4 | AUC 5-11 |\n|---|---|---|---|---|")
    for s in (0.9, 0.0):
        shortcut(SynthConfig(preset="demo", slices=args.slices, size=args.size, seed=args.seed + 1, spurious=s))


if __name__ == "__main__":
    main()
