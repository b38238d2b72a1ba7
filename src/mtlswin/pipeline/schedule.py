"""The runs of one experiment and what each waits for: what an executor (:mod:`mtlswin.pipeline.executors`) takes.

:func:`build_schedule` turns rows x seeds into :class:`TrainRun` s (row, seed, run folder, config file and its
overrides, the runs it needs first) and :class:`DerivedRun` s (made from a trained run once it is there: DFR
from its Swin). The overrides of a run, in order: the seed's data, the seed, the run folder, the run it needs
(``model.frozen_encoder``: a Joint-Swin or segmentation-gated Swin run waits for its Swin-Unet), the row's own
overrides, the row's tuned settings (``mtlswin tune``), then the user's (and the sub-experiment's).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mtlswin.pipeline.configs import config_path, row_digest, row_overrides
from mtlswin.pipeline.experiment_data import SeedData
from mtlswin.pipeline.presets import Preset
from mtlswin.pipeline.rows import Derivation, get_row, ordered_rows
from mtlswin.pipeline.run_state import run_done

__all__ = ["DerivedRun", "Schedule", "TrainRun", "build_schedule", "run_name"]


def run_name(row: str, seed: int) -> str:
    """The run folder's name of ``row`` trained with ``seed``."""
    return f"{row}-seed{seed}"


@dataclass(frozen=True)
class TrainRun:
    """One run to train: ``config`` + ``overrides`` into ``folder``; ``needs``: names of the runs it waits for;
    ``digest``: of its resolved config (:func:`mtlswin.runs.config_digest`: what tells a finished run);
    ``evaluate``: the splits to evaluate it on right after training (None: evaluated elsewhere, or not at all)."""

    row: str
    seed: int
    folder: Path
    config: Path
    overrides: tuple[str, ...]
    needs: tuple[str, ...] = ()
    digest: str | None = None
    evaluate: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return self.folder.name

    def done(self) -> bool:
        """Trained with this very config (:func:`mtlswin.pipeline.run_state.run_done`)."""
        return run_done(self.folder, self.digest)

    def extended(self, overrides: Sequence[str], folder: Path | None = None) -> TrainRun:
        """This run with ``overrides`` after its own, in ``folder`` (default: its own) and with the digest of the
        config that results (a tuning trial, or a user's overrides added to a run built without them)."""
        folder = folder or self.folder
        name = (f"output.name={folder.name}",) if folder != self.folder else ()
        every = (*self.overrides, *overrides, *name)
        return replace(self, folder=folder, overrides=every, digest=row_digest(self.config, every))


@dataclass(frozen=True)
class DerivedRun:
    """A run made from the trained run ``source`` by ``derivation`` (after training, before evaluation)."""

    row: str
    seed: int
    folder: Path
    source: Path
    derivation: Derivation

    @property
    def name(self) -> str:
        return self.folder.name

    def done(self) -> bool:
        return self.derivation.done(self.folder, self.source)

    def make(self) -> None:
        self.derivation.make(self.folder, self.source)


@dataclass(frozen=True)
class Schedule:
    """``train``: the runs to train, each after the runs it ``needs`` (seed-major, dependencies first within a
    seed); ``derived``: the runs made afterwards from trained ones; ``results``: the run folders the experiment
    reports on (every row but the auxiliary ones, seed-major)."""

    train: tuple[TrainRun, ...] = ()
    derived: tuple[DerivedRun, ...] = ()
    results: tuple[Path, ...] = ()

    def without(self, names: Collection[str]) -> Schedule:
        """The schedule less the training runs called ``names`` (e.g. the ones already done)."""
        return replace(self, train=tuple(r for r in self.train if r.name not in names))


def _train_run(
    preset: Preset, row: str, seed: int, runs_dir: Path, data: SeedData, splits: tuple[str, ...] | None,
    overrides: Sequence[str], settings: Sequence[str] = (),
) -> TrainRun:  # fmt: skip
    spec = get_row(row)
    folder = runs_dir / run_name(row, seed)
    cfg = [
        f"data.manifest={data.manifest}",
        f"data.splits={data.splits}",
        f"data.cache_dir={data.cache}",
        f"train.seed={seed}",
        f"output.dir={runs_dir}",
        f"output.name={folder.name}",
    ]
    needs = () if spec.needs is None else (run_name(spec.needs, seed),)
    cfg += [f"{spec.needs_key}={runs_dir / n}" for n in needs]
    cfg += row_overrides(preset, row) + list(settings) + list(overrides)
    config = config_path(preset, row)
    return TrainRun(row, seed, folder, config, tuple(cfg), needs, row_digest(config, cfg), splits)


def build_schedule(
    preset: Preset, rows: Sequence[str], seeds: Sequence[int], runs_dir: Path, data: Mapping[int, SeedData],
    test_splits: Mapping[int, tuple[str, ...]], overrides: Sequence[str] = (),
    row_settings: Mapping[str, Sequence[str]] | None = None,
) -> Schedule:  # fmt: skip
    """The runs of ``rows`` (and the rows they depend on) x ``seeds`` under ``runs_dir``: seed k's runs use
    ``data[k]`` and are evaluated on ``test_splits[k]`` right after training (an auxiliary run is not evaluated);
    ``row_settings`` (``{row: overrides}``, e.g. the settings ``mtlswin tune`` selected) apply to that row's runs
    after its own overrides; ``overrides`` apply to every run after those."""
    row_settings = row_settings or {}
    train, derived, results = [], [], []
    for seed in seeds:
        for row in ordered_rows(rows):
            spec = get_row(row)
            folder = runs_dir / run_name(row, seed)
            if not spec.auxiliary:
                results.append(folder)
            if spec.derived_from is not None and spec.derivation is not None:
                source = runs_dir / run_name(spec.derived_from, seed)
                derived.append(DerivedRun(row, seed, folder, source, spec.derivation))
                continue
            splits = None if spec.auxiliary else test_splits[seed]
            settings = row_settings.get(row, ())
            train.append(_train_run(preset, row, seed, runs_dir, data[seed], splits, overrides, settings))
    return Schedule(tuple(train), tuple(derived), tuple(results))
