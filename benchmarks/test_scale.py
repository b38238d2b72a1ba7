"""Test sets of the demo phantom at ``test_scale`` 1 and 2 (not a test): ``python benchmarks/test_scale.py``.

For each scale, draws the demo preset's phantom (``DEMO_PHANTOM``: 6,000 slices at 128 px, twins of hospitals 1
and 5-11; draw ``--seed``, as ``reproduce`` draws seed k's), splits it as the preset does (``DEMO_SPLITS``), and
prints per test set the slices, positives and patients, with the seconds that ``evaluate_run`` (what ``reproduce``
runs after each training: predictions, the counterfactual twins, 1,000 bootstrap resamples) takes on it for one
demo model. The model is untrained (random initial weights, ``--row``'s demo config): the forward pass is what
costs, and it does not depend on the weights. One torch thread, as each of ``reproduce``'s two workers uses.
Also the seconds to draw each phantom (``--workers`` processes). Asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path


def draw(out: Path, scale: int, seed: int, workers: int, slices: int | None) -> tuple[Path, Path, float]:
    """The demo phantom at ``scale`` under ``out`` and its splits; seconds to draw it."""
    from mtlswin.data.manifest import read_manifest
    from mtlswin.data.phantom import SynthConfig, write_dataset
    from mtlswin.data.splits import make_splits, write_splits
    from mtlswin.pipeline.presets import DEMO_PHANTOM, DEMO_SPLITS

    options = {**DEMO_PHANTOM, **({"slices": slices} if slices else {})}
    start = time.perf_counter()
    write_dataset(SynthConfig(preset="demo", seed=seed, test_scale=scale, **options), out, workers=workers)
    seconds = time.perf_counter() - start
    table = read_manifest(out / "manifest.csv", check_files=False).table
    splits = write_splits(make_splits(table, protocol="paper", seed=0, **DEMO_SPLITS), out.parent / "splits.csv")
    return out / "manifest.csv", splits, seconds


def untrained_run(row: str, manifest: Path, splits: Path, out: Path) -> Path:
    """A run folder of ``row``'s demo config with its initial weights (input statistics from the train split)."""
    import lightning.pytorch as pl

    from mtlswin.config import load_config, save_config
    from mtlswin.models import save_model
    from mtlswin.runs import stored_config
    from mtlswin.training.train import build_datamodule, build_model, resolve_input_norm

    config_file = Path(str(resources.files("mtlswin") / "configs" / "demo" / f"{row}.yaml"))
    sets = [f"data.manifest={manifest}", f"data.splits={splits}", f"data.cache_dir={out / 'cache'}",
            f"output.dir={out}", f"output.name={row}"]  # fmt: skip
    config = load_config(config_file, sets)
    resolve_input_norm(config, build_datamodule(config))  # builds the image cache, as the first run of a draw does
    pl.seed_everything(0)
    config.run_dir.mkdir(parents=True)
    save_config(stored_config(config), config.run_dir / "config.yaml")
    save_model(build_model(config), config.run_dir / "model.safetensors")
    return config.run_dir


def sizes(manifest: Path, splits: Path, split: str) -> tuple[int, int, int]:
    """Slices, positives (hypodensity) and patients of ``split``."""
    from mtlswin.data.manifest import read_manifest
    from mtlswin.data.splits import read_splits

    table = read_manifest(manifest, check_files=False).table
    parts = read_splits(splits, table)
    part = table.loc[parts.loc[parts["split"] == split, "index"]]
    return len(part), int(part["hypodensity"].sum()), int(part["patient_id"].nunique())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,2", help="test_scale values (default 1,2)")
    parser.add_argument("--seed", type=int, default=0, help="the phantom draw (default 0: seed 0's of the demo)")
    parser.add_argument("--row", default="mtl_cls_seg", help="the demo row whose model is evaluated")
    parser.add_argument("--workers", type=int, default=2, help="processes drawing the phantom")
    parser.add_argument("--slices", type=int, default=None, help="phantom slices (default: the demo preset's 6,000)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()

    import torch

    from mtlswin.evaluation.evaluate import evaluate_run

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        for scale in (int(s) for s in args.scales.split(",")):
            folder = work / f"scale-{scale}"
            manifest, splits, draw_s = draw(folder / "phantom", scale, args.seed, args.workers, args.slices)
            run = untrained_run(args.row, manifest, splits, folder / "runs")
            if not rows:
                evaluate_run(run, ["test_a"], device="cpu")  # warm-up, not timed: the first forward of the process
            for split in ("test_a", "test_b"):
                start = time.perf_counter()
                evaluate_run(run, [split], device="cpu")
                seconds = time.perf_counter() - start
                rows.append((scale, split, *sizes(manifest, splits, split), seconds, draw_s))
    size = f"{args.slices} slices" if args.slices else "the demo preset's size"
    print(f"demo phantom ({size}, draw {args.seed}), `{args.row}` untrained, one torch thread\n")
    print("| test_scale | test set | slices | positives | patients | evaluate_run (s) | phantom drawn in (s) |")
    print("|---|---|---|---|---|---|---|")
    for scale, split, n, pos, patients, seconds, draw_s in rows:
        print(f"| {scale} | {split} | {n} | {pos} | {patients} | {seconds:.1f} | {draw_s:.0f} |")


if __name__ == "__main__":
    main()
