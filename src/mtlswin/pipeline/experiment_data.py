"""The data of an experiment: the phantom (one draw per training seed, or one) or the user's manifest, the
splits, which test sets a seed's runs are scored on, and the report's description of them.

Training seed k of a demo preset trains and is tested on phantom draw :func:`draw_seed` ``(M, k)``; the rows
of one seed share it, so differences between rows stay paired (:mod:`mtlswin.pipeline.claims`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mtlswin.data.manifest import read_manifest
from mtlswin.data.phantom import SynthConfig, write_dataset
from mtlswin.data.splits import check_splits, make_splits, read_splits, split_table, split_warnings, write_splits
from mtlswin.pipeline.presets import Preset
from mtlswin.pipeline.run_state import EVAL_SPLITS
from mtlswin.pipeline.stages import Progress

__all__ = [
    "EVAL_SPLITS",
    "SeedData",
    "draw_phantom",
    "draw_seed",
    "eval_splits",
    "protocol_text",
    "seed_data",
    "split_has_masks",
]


@dataclass(frozen=True)
class SeedData:
    """The data the runs of one training seed use: manifest, splits and image cache."""

    manifest: Path
    splits: Path
    cache: Path


def draw_seed(phantom_seed: int, training_seed: int) -> int:
    """The phantom seed of training seed k's draw under the master ``phantom_seed`` M: ``1000 * M + k``
    (M = 0 gives draws 0, 1, 2 for the demo's seeds; another M gives draws that share none of them)."""
    if not 0 <= training_seed < 1000:
        raise ValueError(f"one phantom draw per seed needs seeds in 0..999, got {training_seed}")
    return 1000 * phantom_seed + training_seed


def _phantom_config(preset: Preset, slices: int | None, seed: int, spurious: float | None = None) -> SynthConfig:
    """The phantom draw the preset asks for (``--slices`` and the axis' ``spurious`` over its options)."""
    options = dict(preset.phantom_options)
    if slices is not None:
        options["slices"] = slices
    if spurious is not None:
        options["spurious"] = spurious
    return SynthConfig(preset=preset.phantom, seed=seed, **options)


def draw_phantom(out: Path, config: SynthConfig, workers: int = 1, progress: bool = True) -> None:
    """Draw ``config`` into ``out`` through ``out.partial``, which replaces ``out`` only when complete: a phantom
    interrupted while being written is drawn again, never used."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_dataset(config, tmp, progress=progress, workers=workers)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def _synth(out: Path, config: SynthConfig, splits: Path, workers: int = 1) -> None:
    splits.unlink(missing_ok=True)  # the splits of an earlier phantom here are not this one's
    draw_phantom(out, config, workers)


def _drawn_with(info: Path) -> dict:
    """The options a phantom folder was drawn with (its ``phantom.json``), options it omits at their defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(SynthConfig)}
    return json.loads(json.dumps({**defaults, **json.loads(info.read_text())["config"]}))


def _manifest_ok(manifest: Path, config: SynthConfig, splits: Path) -> bool:
    """Whether the phantom of ``config`` is written at ``manifest``'s folder; a ``ValueError`` naming the file and
    the options when the folder holds a phantom drawn with other options (it is never used, nor replaced)."""
    info = manifest.parent / "phantom.json"
    if not (manifest.is_file() and info.is_file()):
        return False
    found, asked = _drawn_with(info), json.loads(json.dumps(dataclasses.asdict(config)))
    differ = [f"{key}: {found.get(key)!r} there, {asked.get(key)!r} asked" for key in sorted({*found, *asked})
              if found.get(key) != asked.get(key)]  # fmt: skip
    if differ:
        raise ValueError(
            f"{info} was drawn with other phantom options than the preset asks for ({'; '.join(differ)}); "
            f"its runs would mix the two draws. Remove {manifest.parent} and {splits} to draw it again, or give "
            "another --out"
        )
    return True


def _splits_ok(manifest: Path, splits: Path, target: str) -> bool:
    if not splits.is_file():
        return False
    table = read_manifest(manifest, target, check_files=False).table
    try:
        check_splits(table, read_splits(splits, table))
    except ValueError:
        return False
    return True


def _make_splits(
    manifest: Path, splits: Path, target: str, seed: int, log: Callable[[str], None], options: dict | None = None
) -> None:
    table = read_manifest(manifest, target, check_files=False).table  # files are checked by the data module
    parts = make_splits(table, target=target, protocol="paper", seed=seed, **(options or {}))
    write_splits(parts, splits)
    log(split_table(table, parts, target))
    for line in split_warnings(table, parts, target):
        log(line)


def split_has_masks(manifest: Path, splits: Path, split: str) -> bool:
    table = pd.read_csv(manifest, dtype={"mask": str}, keep_default_na=False)
    rows = pd.read_csv(splits)
    chosen = table.iloc[rows.loc[rows["split"] == split, "index"].to_numpy()]
    return bool((chosen["mask"].astype(str).str.strip() != "").any())


def protocol_text(preset: Preset, data: dict[int, SeedData], target: str) -> str:
    """What the test sets hold (slices, positives, patients) and how the splits depart from the paper's."""
    tables = {}
    for seed, part in data.items():
        table = read_manifest(part.manifest, target, check_files=False).table
        tables[seed] = split_table(table, read_splits(part.splits, table), target)
    first = next(iter(tables))
    lines = ["## Data and splits", ""]
    if len(set(data.values())) > 1:
        lines += ["Each training seed has a phantom draw of its own: seed k's rows train and are tested on draw k "
                  "(the rows of one draw share it, so their differences stay paired). A verdict therefore speaks for "
                  "the method on the phantom, not for one data set.", ""]  # fmt: skip
        for seed, text in tables.items():
            lines += [f"Seed {seed} (`{data[seed].manifest.parent.parent.name}`):", "", "```", text, "```", ""]
    else:
        lines += ["```", tables[first], "```", ""]
    opts = preset.split_options
    if opts.get("test_a_fraction") not in (None, 0.1):
        lines.append(f"- Test A is {opts['test_a_fraction']:.0%} of hospital 1 (the paper: 10%), for enough positives.")
    if opts.get("test_b_size") == "all":
        lines.append("- Test B is every slice of hospitals 5-11 at their own positive rate (the paper: a sample of "
                     "test A's size and positive rate), for enough positives and patients.")  # fmt: skip
    if preset.phantom_options.get("twin_hospitals"):
        lines.append("- Every test slice has a counterfactual twin (the same slice with the spurious cue flipped, "
                     "all else identical): the cue sensitivity below is measured on them.")  # fmt: skip
    return "\n".join(lines) + "\n"


def _phantom_data(
    preset: Preset, folder: Path, seed: int, slices: int | None, spurious: float | None, progress: Progress,
    log: Callable[[str], None], name: str, jobs: int,
) -> SeedData:  # fmt: skip
    """Write (or find) one phantom draw and its splits under ``folder``."""
    data_dir = folder / "phantom"
    manifest = data_dir / "manifest.csv"
    config, splits = _phantom_config(preset, slices, seed, spurious), folder / "splits.csv"
    progress.stage(f"data ({name})", lambda: _manifest_ok(manifest, config, splits),
                   lambda: _synth(data_dir, config, splits, workers=jobs))  # fmt: skip
    return _with_splits(preset, manifest, folder, progress, log, name)


def _with_splits(
    preset: Preset, manifest: Path, folder: Path, progress: Progress, log: Callable[[str], None], name: str
) -> SeedData:
    target, splits = "hypodensity", folder / "splits.csv"
    progress.stage(f"splits ({name})", lambda: _splits_ok(manifest, splits, target),
                   lambda: _make_splits(manifest, splits, target, 0, log, preset.split_options))  # fmt: skip
    return SeedData(manifest, splits, folder / "cache")


def seed_data(
    preset: Preset, out: Path, manifest: str | Path | None, seeds: tuple[int, ...], slices: int | None,
    progress: Progress, log: Callable[[str], None], spurious: float | None, jobs: int, phantom_seed: int,
) -> dict[int, SeedData]:  # fmt: skip
    """Each training seed's data: the user's manifest (shared), one phantom, or one phantom draw per seed."""
    tag = "" if spurious is None else f", spurious {spurious:g}"
    if manifest is not None:
        manifest_path = Path(manifest).resolve()
        if not manifest_path.is_file():
            raise FileNotFoundError(f"--manifest {manifest_path} does not exist")
        shared = _with_splits(preset, manifest_path, out, progress, log, f"your manifest{tag}")
        return dict.fromkeys(seeds, shared)
    if preset.phantom is None:
        raise ValueError(f"preset {preset.name!r} needs --manifest (it generates no phantom)")
    if not preset.draw_per_seed:
        shared = _phantom_data(preset, out, phantom_seed, slices, spurious, progress, log, f"phantom{tag}", jobs)
        return dict.fromkeys(seeds, shared)
    return {k: _phantom_data(preset, out / "data" / f"seed-{k}", draw_seed(phantom_seed, k), slices, spurious,
                             progress, log, f"phantom draw {draw_seed(phantom_seed, k)} for seed {k}{tag}", jobs)
            for k in seeds}  # fmt: skip


def eval_splits(data: SeedData) -> tuple[str, ...]:
    """test_a and test_b, and test_trap where the splits have one (a phantom with trap hospitals)."""
    present = set(pd.read_csv(data.splits)["split"])
    return EVAL_SPLITS + tuple(s for s in ("test_trap",) if s in present)
