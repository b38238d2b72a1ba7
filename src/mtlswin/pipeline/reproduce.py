"""``mtlswin reproduce``: from nothing (or the user's manifest) to the paper's Table 1.

Stages, each skipped when its output already exists and is valid, so a re-run continues where
the last one stopped:

1. ``data``: the phantom (``OUT/phantom``), unless a manifest is given;
2. ``splits``: the paper's protocol (``OUT/splits.csv``);
3. ``train <row>-seed<s>``: one run folder per row and seed under ``OUT/runs`` (a run with a
   ``last.ckpt`` but no exported model is resumed);
4. ``evaluate``: ``metrics.json`` on test_a and test_b of each run;
5. ``audit``: the Grad-CAM audit of the classifiers (first seed) on test_a (``OUT/audit``);
6. ``report``: ``OUT/report.md`` with the results table, figures, audit, and the paper's Table 1.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mtlswin.pipeline.paper_table import PAPER_TABLE1_MD
from mtlswin.pipeline.presets import AUXILIARY_ROWS, SEGMENTATION_RUN_FOR, Preset, get_preset, ordered_rows

AUDIT_SPLIT = "test_a"
EVAL_SPLITS = ("test_a", "test_b")


def config_path(preset: Preset, row: str) -> Path:
    """The shipped YAML of ``row`` for ``preset`` (``mtlswin/configs/<dir>/<row>.yaml``)."""
    if row == "swin_unet_tiny":  # the Swin-Unet config, with Joint-Swin-tiny's depths (see row_overrides)
        row = "swin_unet"
    path = Path(str(resources.files("mtlswin") / "configs" / preset.config_dir / f"{row}.yaml"))
    if not path.is_file():
        raise FileNotFoundError(f"no config for row {row!r} of preset {preset.name!r} at {path}")
    return path


def row_overrides(preset: Preset, row: str) -> list[str]:
    """Overrides a row needs beyond its YAML: the auxiliary ``swin_unet_tiny`` takes Joint-Swin-tiny's depths."""
    if row != "swin_unet_tiny":
        return []
    import yaml

    depths = yaml.safe_load(config_path(preset, "joint_swin_tiny").read_text())["model"].get("depths", [2, 2, 6, 2])
    return [f"model.depths=[{','.join(str(d) for d in depths)}]"]


@dataclass
class Progress:
    """Prints one line per stage: ``[k] stage ... done in 12.3 s`` or ``... skipped (valid output exists)``."""

    log: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str, done: Callable[[], bool], action: Callable[[], object]) -> None:
        k = len(self.timings) + 1
        if done():
            self.log(f"[{k}] {name}: skipped (valid output exists)")
            self.timings[name] = 0.0
            return
        self.log(f"[{k}] {name}: running")
        start = time.perf_counter()
        action()
        self.timings[name] = time.perf_counter() - start
        if not done():
            raise RuntimeError(f"stage {name!r} finished but its output is not valid; see the messages above")
        self.log(f"[{k}] {name}: done in {self.timings[name]:.1f} s")


def _synth(out: Path, preset_name: str, slices: int | None, seed: int) -> None:
    from mtlswin.data.phantom import SynthConfig, write_dataset

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_dataset(SynthConfig(preset=preset_name, slices=slices, seed=seed), tmp, progress=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)  # a phantom interrupted while being written is never used


def _manifest_ok(manifest: Path) -> bool:
    return manifest.is_file() and (manifest.parent / "phantom.json").is_file()


def _splits_ok(manifest: Path, splits: Path, target: str) -> bool:
    from mtlswin.data.manifest import read_manifest
    from mtlswin.data.splits import check_splits, read_splits

    if not splits.is_file():
        return False
    table = read_manifest(manifest, target, check_files=False).table
    try:
        check_splits(table, read_splits(splits, table))
    except ValueError:
        return False
    return True


def _make_splits(manifest: Path, splits: Path, target: str, seed: int, log: Callable[[str], None]) -> None:
    from mtlswin.data.manifest import read_manifest
    from mtlswin.data.splits import make_splits, split_table, split_warnings, write_splits

    table = read_manifest(manifest, target).table
    parts = make_splits(table, target=target, protocol="paper", seed=seed)
    write_splits(parts, splits)
    log(split_table(table, parts, target))
    for line in split_warnings(table, parts, target):
        log(line)


def _row_digest(cfg_file: Path, overrides: list[str]) -> str:
    """The digest ``train`` will store for this row's resolved config (:func:`mtlswin.runs.config_digest`)."""
    from mtlswin.config import load_config
    from mtlswin.runs import config_digest

    return config_digest(load_config(cfg_file, overrides))


def _stored_digest(run: Path) -> str | None:
    from mtlswin.runs import DIGEST_FILE

    path = run / DIGEST_FILE
    return path.read_text().strip() if path.is_file() else None


def _run_ok(run: Path, digest: str) -> bool:
    """Done: a readable model.safetensors header, config.yaml, and the stored config digest equal to ``digest``."""
    from mtlswin.runs import run_tasks

    if not (run / "config.yaml").is_file() or _stored_digest(run) != digest:
        return False
    try:
        run_tasks(run)
    except (OSError, ValueError):
        return False
    return True


def _set_aside(run: Path, digest: str, log: Callable[[str], None]) -> None:
    """A run folder trained with other settings is renamed (never deleted) before this row is trained afresh."""
    old = _stored_digest(run)
    if not run.exists() or old in (None, digest):
        return
    aside = run.with_name(f"{run.name}.replaced-{old[:12]}")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(run, aside)
    log(f"{run.name}: its config changed (another --set?); the old run was moved to {aside}")


def _evaluated(run: Path) -> bool:
    path = run / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return False
    return isinstance(metrics, dict) and all(isinstance(metrics.get(s), dict) for s in EVAL_SPLITS)


def _has_logits(run: Path) -> bool:
    from mtlswin.runs import run_tasks

    return "cls" in run_tasks(run)


def _audited_runs(runs: list[Path]) -> list[dict[str, str | None]]:
    """What runs.json records: each audited run folder and its config digest (a retrained run is re-audited)."""
    return [{"run": str(r), "config_sha256": _stored_digest(r)} for r in runs]


def _audit_ok(audit: Path, runs: list[Path]) -> bool:
    listed = audit / "runs.json"
    try:
        same = listed.is_file() and json.loads(listed.read_text()) == _audited_runs(runs)
    except ValueError:
        return False
    return same and (audit / "audit.csv").is_file() and (audit / "gradcam_grid.png").is_file()


def _split_has_masks(manifest: Path, splits: Path, split: str) -> bool:
    import pandas as pd

    table = pd.read_csv(manifest, dtype={"mask": str}, keep_default_na=False)
    rows = pd.read_csv(splits)
    chosen = table.iloc[rows.loc[rows["split"] == split, "index"].to_numpy()]
    return bool((chosen["mask"].astype(str).str.strip() != "").any())


def _audit(audit: Path, runs: list[Path]) -> None:
    from mtlswin.explain.collect import audit_runs
    from mtlswin.io import atomic_write_text

    (audit / "runs.json").unlink(missing_ok=True)  # the audit files are replaced one by one: not done until the end
    audit_runs(runs, AUDIT_SPLIT, audit)
    atomic_write_text(audit / "runs.json", json.dumps(_audited_runs(runs)))


def _train_row(cfg_file: Path, overrides: list[str]) -> None:
    from mtlswin.config import load_config
    from mtlswin.training.train import train

    config = load_config(cfg_file, overrides)
    train(config, resume=(config.run_dir / "checkpoints" / "last.ckpt").is_file())


def _write_report(out: Path, preset: Preset, runs: list[Path], audit: Path, timings: dict[str, float]) -> Path:
    from mtlswin.io import atomic_write_text
    from mtlswin.training.report import write_report

    report = write_report(runs, out, audit=audit if (audit / "audit.md").is_file() else None)
    total = sum(timings.values())
    text = report.read_text()
    text = text.replace(
        "# Results (Table 1 layout)",
        f"# mtlswin reproduce: preset `{preset.name}`\n\n{preset.description}.\n\n"
        "Test A = 10% of hospital 1 (hospitals 1-4, where the spurious cue holds); test B = hospitals 5-11 "
        "(covariate shift, cue independent of the label), same size and positive rate. F1 = macro F1.\n\n"
        "## Results (Table 1 layout)",
        1,
    )
    text += (
        "\n## The paper's Table 1, for orientation\n\n"
        "These are the numbers the paper reports on its private CT data at full size (224 px, 600 epochs, "
        "ImageNet-initialised encoders). The table above comes from different data (here: "
        f"{'the synthetic phantom' if preset.phantom else 'your manifest'}) and, for the demo presets, "
        "from tiny models trained for minutes on a CPU, so the two are not comparable number for number; "
        "compare the ordering of the rows, not the values.\n\n" + PAPER_TABLE1_MD
    )
    text += "\n## Time per stage\n\n| stage | seconds |\n|---|---|\n"
    text += "".join(f"| {k} | {v:.1f} |\n" for k, v in timings.items()) + f"| total | {total:.1f} |\n"
    atomic_write_text(report, text)
    return report


def reproduce(
    preset_name: str,
    out: str | Path,
    manifest: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    rows: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    slices: int | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run the whole experiment of ``preset_name`` into ``out``; returns the path of ``out/report.md``.

    ``overrides`` (``key=value``) apply to every row's config after the preset's own paths.
    """
    preset = get_preset(preset_name)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(log)
    target = "hypodensity"
    if manifest is None:
        if preset.phantom is None:
            raise ValueError(f"preset {preset.name!r} needs --manifest (it generates no phantom)")
        data_dir = out / "phantom"
        manifest_path = data_dir / "manifest.csv"
        progress.stage("data (phantom)", lambda: _manifest_ok(manifest_path),
                       lambda: _synth(data_dir, preset.phantom, slices, seed=0))  # fmt: skip
    else:
        manifest_path = Path(manifest).resolve()
        if not manifest_path.is_file():
            raise FileNotFoundError(f"--manifest {manifest_path} does not exist")
    splits = out / "splits.csv"
    progress.stage("splits", lambda: _splits_ok(manifest_path, splits, target),
                   lambda: _make_splits(manifest_path, splits, target, 0, log))  # fmt: skip

    runs_dir = out / "runs"
    seeds = tuple(seeds) if seeds is not None else preset.seeds
    row_list = ordered_rows(tuple(rows) if rows is not None else preset.rows)
    runs: list[Path] = []
    for seed in seeds:
        for row in row_list:
            run = runs_dir / f"{row}-seed{seed}"
            cfg = [
                f"data.manifest={manifest_path}",
                f"data.splits={splits}",
                f"data.cache_dir={out / 'cache'}",
                f"train.seed={seed}",
                f"output.dir={runs_dir}",
                f"output.name={run.name}",
            ]
            if row in SEGMENTATION_RUN_FOR:
                cfg.append(f"model.frozen_encoder={runs_dir / f'{SEGMENTATION_RUN_FOR[row]}-seed{seed}'}")
            cfg += row_overrides(preset, row) + list(overrides)
            digest = _row_digest(config_path(preset, row), cfg)
            _set_aside(run, digest, log)
            progress.stage(f"train {run.name}", lambda run=run, digest=digest: _run_ok(run, digest),
                           lambda row=row, cfg=cfg: _train_row(config_path(preset, row), cfg))  # fmt: skip
            if row not in AUXILIARY_ROWS:
                runs.append(run)

    from mtlswin.training.evaluate import evaluate_run

    for run in runs:
        progress.stage(f"evaluate {run.name}", lambda run=run: _evaluated(run),
                       lambda run=run: evaluate_run(run, EVAL_SPLITS))  # fmt: skip

    audit = out / "audit"
    first_seed = [r for r in runs if r.name.endswith(f"-seed{seeds[0]}") and _has_logits(r)]
    if first_seed and not _split_has_masks(manifest_path, splits, AUDIT_SPLIT):
        log(f"audit: skipped ({AUDIT_SPLIT} has no slice with a hematoma mask)")
    elif first_seed:
        progress.stage("audit", lambda: _audit_ok(audit, first_seed), lambda: _audit(audit, first_seed))
    report = _write_report(out, preset, runs, audit, progress.timings)
    log(f"report: {report}  (total {sum(progress.timings.values()) / 60:.1f} min)")
    return report
