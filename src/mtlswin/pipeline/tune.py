"""``mtlswin tune``: the same budget of hyper-parameter trials for every method, selected by two rules fixed in
advance (docs/tuning.md, committed before any trial ran).

Each method row of the methods preset gets the trials of its :class:`Grid` (5, one decade apart, the a-priori
setting among them), trained with seed 0 on one phantom draw that no claim uses (master seed
:data:`TUNE_PHANTOM_SEED`), and evaluated on the validation split only. Two more runs are trained once:
``swin`` (the reference, and the source of DFR, whose C is chosen inside DFR: :mod:`mtlswin.posthoc.dfr`) and
``swin_unet`` (the encoder the segmentation-gated Swin freezes). Writes under ``OUT``:

- ``trials.csv`` / ``tune.md``: per trial the setting, validation AUC, validation worst-group accuracy, whether it
  learned (:mod:`mtlswin.evaluation.learned`), and per method the setting each rule selected;
- ``selected.csv`` and ``selected/<rule>/<row>.yaml``: the selected settings, as overrides and as the row's YAML
  with them written in (what ``reproduce --tuned OUT --rule R`` trains).

Like ``reproduce``, every stage is skipped when its output is there, so a killed search continues.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from mtlswin.evaluation.learned import best_val_auc, learning_failure
from mtlswin.io import atomic_write_text
from mtlswin.pipeline.configs import config_path
from mtlswin.pipeline.derived import dfr_done, make_dfr
from mtlswin.pipeline.executors.base import train_missing
from mtlswin.pipeline.executors.choice import ExecutorChoice
from mtlswin.pipeline.executors.local import default_jobs
from mtlswin.pipeline.experiment_data import seed_data
from mtlswin.pipeline.presets import Preset, get_preset
from mtlswin.pipeline.run_state import run_evaluated
from mtlswin.pipeline.schedule import Schedule, build_schedule, run_name
from mtlswin.pipeline.stages import Progress, time_table

__all__ = [
    "GRIDS",
    "RULES",
    "TUNE_PHANTOM_SEED",
    "Grid",
    "select",
    "selected_overrides",
    "trial_table",
    "tune",
    "tuned_text",
]

TUNE_PHANTOM_SEED = 9  # draw 9000: no claim of any preset uses master seed 9 at its default settings
TUNE_SEED = 0
VAL = "val"
RULES = {"val_auc": "(a) best validation AUC: a user without cue labels",
         "worst_group": "(b) best validation worst-group accuracy: a user with cue labels on the validation split"}  # fmt: skip


@dataclass(frozen=True)
class Grid:
    """The trials of one method row: ``values`` of the setting ``name``; ``overrides(value)`` the config overrides
    of a trial; ``a_priori`` the value chosen before any run (docs/methods.md); ``needs``: the base run it freezes."""

    row: str
    name: str
    values: tuple
    a_priori: object
    overrides: Callable[[object], list[str]]

    def label(self, value: object) -> str:
        """The value as the trial tables and run folders name it."""
        if isinstance(value, tuple):
            return "/".join(f"{v:g}" for v in value)
        return f"{value:g}"


def _loss_weights(value: object) -> list[str]:
    cls, seg = value  # type: ignore[misc]
    return [f"train.loss_weights={{cls: {cls}, seg: {seg}}}"]


# Longest trials first (RRR runs a double backward, MTL a decoder), so the two slots finish together.
GRIDS: dict[str, Grid] = {g.row: g for g in (
    Grid("swin_rrr", "train.guidance.weight", (1e-3, 1e-2, 1e-1, 1.0, 10.0), 10.0,
         lambda v: [f"train.guidance.weight={v}"]),
    Grid("mtl_cls_seg", "train.loss_weights (cls/seg)", ((0.1, 0.9), (0.25, 0.75), (0.4, 0.6), (0.6, 0.4), (0.8, 0.2)),
         (0.4, 0.6), _loss_weights),
    Grid("swin_cam_align", "train.guidance.weight", (0.01, 0.1, 1.0, 10.0, 100.0), 1.0,
         lambda v: [f"train.guidance.weight={v}"]),
    Grid("swin_groupdro", "train.objective.eta", (1e-4, 1e-3, 1e-2, 1e-1, 1.0), 1e-2,
         lambda v: [f"train.objective.eta={v}"]),
    Grid("seg_gated_swin", "model.gate_radius", (0, 2, 4, 8, 16), 4, lambda v: [f"model.gate_radius={v}"]),
)}  # fmt: skip
DFR_ROW = "swin_dfr"
BASE_ROWS = ("swin", "swin_unet")


def trial_name(grid: Grid, value: object) -> str:
    """The run folder of a trial: ``<row>@<setting>-seed0``."""
    return run_name(f"{grid.row}@{grid.label(value).replace('/', '_')}", TUNE_SEED)


def _schedule(
    preset: Preset, rows: Sequence[str], runs_dir: Path, data, overrides: Sequence[str]
) -> tuple[Schedule, dict[str, tuple]]:  # fmt: skip
    """The base runs and every trial of ``rows`` (each trial: its row's run of seed 0 with the setting, in a folder
    of its own), ``overrides`` last; ``{run name: (row, value)}`` of the trials."""
    bases = build_schedule(preset, [*BASE_ROWS, *rows], [TUNE_SEED], runs_dir, data, {TUNE_SEED: (VAL,)})
    by_row = {run.row: run for run in bases.train}
    train = [replace(by_row["swin"].extended(overrides), evaluate=(VAL,)),
             replace(by_row["swin_unet"].extended(overrides), evaluate=None)]  # fmt: skip
    trials: dict[str, tuple] = {}
    for row in rows:
        grid = GRIDS[row]
        for value in grid.values:
            folder = runs_dir / trial_name(grid, value)
            run = replace(by_row[row].extended([*grid.overrides(value), *overrides], folder), evaluate=(VAL,))
            train.append(run)
            trials[run.name] = (row, value)
    return Schedule(tuple(train)), trials


def _val_scores(run: Path) -> tuple[float, float, str]:
    """Validation AUC (the best logged, the exported model's), worst-group accuracy, and why it did not learn."""
    log = pd.read_csv(run / "logs" / "metrics.csv") if (run / "logs" / "metrics.csv").is_file() else None
    auc = best_val_auc(log)
    metrics = json.loads((run / "metrics.json").read_text()).get(VAL, {})
    worst = metrics.get("group_acc", {}).get("worst_group_acc", float("nan"))
    predictions = run / "predictions" / f"{VAL}.csv"
    failure = learning_failure(auc, {VAL: pd.read_csv(predictions)} if predictions.is_file() else {})
    return (float("nan") if auc is None else auc), float(worst), failure


def trial_table(runs_dir: Path, trials: Mapping[str, tuple]) -> pd.DataFrame:
    """One row per trial: method row, setting, value label, a priori or not, val AUC, worst-group acc, learned."""
    records = []
    for name, (row, value) in trials.items():
        grid = GRIDS[row]
        auc, worst, failure = _val_scores(runs_dir / name)
        records.append({"row": row, "setting": grid.name, "value": grid.label(value),
                        "a_priori": value == grid.a_priori, "val_auc": auc, "val_worst_group_acc": worst,
                        "learned": not failure, "why_not": failure, "run": name})  # fmt: skip
    return pd.DataFrame.from_records(records)


def select(table: pd.DataFrame, rule: str) -> pd.Series | None:
    """The trial ``rule`` selects among one method's ``table`` (docs/tuning.md), or None when none learned.

    ``val_auc``: the highest validation AUC; ``worst_group``: the highest validation worst-group accuracy, then
    the higher AUC. Remaining ties: the a-priori setting if among them, else the first (smallest) setting.
    """
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    learned = table[table["learned"]]
    if learned.empty:
        return None
    keys = ["val_auc"] if rule == "val_auc" else ["val_worst_group_acc", "val_auc"]
    scores = learned[keys].fillna(-math.inf)
    best = scores.apply(tuple, axis=1)
    top = learned[best == max(best)]
    prior = top[top["a_priori"]]
    return (prior if len(prior) else top).iloc[0]


def _dfr_table(runs_dir: Path) -> pd.DataFrame:
    """DFR's own selection of C (worst-group accuracy on half of the validation patients): one row per C."""
    info = json.loads((runs_dir / run_name(DFR_ROW, TUNE_SEED) / "dfr.json").read_text())
    scores, chosen = info.get("C_scores_worst_group_acc", {}), float(info["C"])
    return pd.DataFrame.from_records([
        {"row": DFR_ROW, "value": c, "half_split_worst_group_acc": s, "selected": float(c) == chosen}
        for c, s in scores.items()
    ])  # fmt: skip


def selected_overrides(out: Path, rule: str) -> dict[str, list[str]]:
    """``{row: overrides}`` that rule ``rule`` selected in the search folder ``out`` (``selected.csv``). A row whose
    selected setting is its a-priori one gets none: its config, digest and run stay those of the a-priori preset,
    so a copy of an a-priori folder retrains only the rows whose setting changed."""
    path = Path(out) / "selected.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `mtlswin tune --out {out}` first")
    table = pd.read_csv(path, dtype=str)
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    chosen = table[(table["rule"] == rule) & table["overrides"].notna() & (table["value"] != table["a_priori"])]
    return {r.row: json.loads(r.overrides) for r in chosen.itertuples()}


def _write_selected(out: Path, preset: Preset, table: pd.DataFrame) -> pd.DataFrame:
    records = []
    for rule in RULES:
        for row, grid in GRIDS.items():
            part = table[table["row"] == row]
            if part.empty:
                continue
            pick = select(part, rule)
            value = None if pick is None else next(v for v in grid.values if grid.label(v) == pick["value"])
            overrides = None if value is None else grid.overrides(value)
            records.append({"rule": rule, "row": row, "setting": grid.name,
                            "value": "did not learn at any setting" if pick is None else pick["value"],
                            "a_priori": grid.label(grid.a_priori),
                            "overrides": None if overrides is None else json.dumps(overrides)})  # fmt: skip
            if overrides is not None:
                folder = out / "selected" / rule
                folder.mkdir(parents=True, exist_ok=True)
                text = config_path(preset, row).read_text()
                head = (f"# {row}: {grid.name} = {pick['value']}, selected by rule {RULES[rule]} from "
                        f"{out / 'trials.csv'} (docs/tuning.md); overrides: {', '.join(overrides)}\n")  # fmt: skip
                atomic_write_text(folder / f"{row}.yaml", head + text)
    selected = pd.DataFrame.from_records(records)
    atomic_write_text(out / "selected.csv", selected.to_csv(index=False))
    return selected


def _markdown(table: pd.DataFrame, selected: pd.DataFrame, dfr: pd.DataFrame | None, timings, skipped) -> str:
    lines = ["# mtlswin tune: the same budget for every method (docs/tuning.md)", "",
             f"Draw {1000 * TUNE_PHANTOM_SEED} of the methods phantom (master seed {TUNE_PHANTOM_SEED}), training "
             f"seed {TUNE_SEED}, validation split only. Learned: val AUC > 0.6 and < 99% of the slices one class.",
             ""]  # fmt: skip
    for row, grid in GRIDS.items():
        part = table[table["row"] == row]
        if part.empty:
            continue
        lines += [f"## {row}: {grid.name}", "", "| setting | val AUC | val worst-group acc | learned |",
                  "|---|---|---|---|"]  # fmt: skip
        for r in part.itertuples():
            mark = " (a priori)" if r.a_priori else ""
            learned = "yes" if r.learned else f"no ({r.why_not})"
            lines.append(f"| {r.value}{mark} | {r.val_auc:.3f} | {r.val_worst_group_acc:.3f} | {learned} |")
        picks = selected[selected["row"] == row]
        lines += ["", *(f"- rule {RULES[p.rule]}: **{p.value}**" for p in picks.itertuples()), ""]
    if dfr is not None and not dfr.empty:
        lines += ["## swin_dfr: C, selected inside DFR (rule b, on half of the validation patients)", "",
                  "| C | worst-group acc on the other half | selected |", "|---|---|---|",
                  *(f"| {r.value} | {r.half_split_worst_group_acc:.3f} | {'yes' if r.selected else ''} |"
                    for r in dfr.itertuples()), ""]  # fmt: skip
    return "\n".join(lines) + "\n" + time_table(timings, skipped)


def tune(
    out: str | Path, rows: Sequence[str] | None = None, jobs: int | None = None, log: Callable[[str], None] = print,
    phantom_seed: int = TUNE_PHANTOM_SEED, overrides: Sequence[str] = (), slices: int | None = None,
    executor: ExecutorChoice | None = None,
) -> Path:  # fmt: skip
    """Run the search of ``rows`` (default: every method with a grid) into ``out``; returns ``out/tune.md``.

    ``overrides`` apply to every run (the tests shrink the recipe with them; the search of docs/tuning.md uses
    none). ``slices``: the phantom's slices (default: the preset's)."""
    rows = tuple(rows) if rows is not None else tuple(GRIDS)
    unknown = [r for r in rows if r not in GRIDS]
    if unknown:
        raise ValueError(f"no tuning grid for {unknown}; rows with one: {', '.join(GRIDS)}")
    preset = get_preset("methods")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(log)
    jobs = jobs if jobs is not None else default_jobs(cpu_only=True)
    data = seed_data(preset, out, None, (TUNE_SEED,), slices, progress, log, None, jobs, phantom_seed)
    runs_dir = out / "runs"
    schedule, trials = _schedule(preset, rows, runs_dir, data, overrides)
    train_missing((executor or ExecutorChoice()).build(out, jobs, True, progress, "", log), schedule, progress)
    for run in schedule.train:
        if run.evaluate:
            progress.stage(f"evaluate {run.name} on {VAL}", lambda r=run: run_evaluated(r.folder, (VAL,)),
                           lambda r=run: _evaluate(r.folder))  # fmt: skip
    source, made = runs_dir / run_name("swin", TUNE_SEED), runs_dir / run_name(DFR_ROW, TUNE_SEED)
    progress.stage("derive swin_dfr (C chosen inside DFR)", lambda: dfr_done(made, source),
                   lambda: make_dfr(made, source))  # fmt: skip
    dfr = _dfr_table(runs_dir)
    table = trial_table(runs_dir, trials)
    atomic_write_text(out / "trials.csv", table.to_csv(index=False))
    atomic_write_text(out / "dfr_trials.csv", dfr.to_csv(index=False))
    selected = _write_selected(out, preset, table)
    report = out / "tune.md"
    atomic_write_text(report, _markdown(table, selected, dfr, progress.timings, progress.skipped))
    log(f"tune: {report}  (total {sum(progress.timings.values()) / 60:.1f} min)")
    return report


def _evaluate(run: Path) -> None:
    from mtlswin.evaluation.evaluate import evaluate_run

    evaluate_run(run, [VAL])


def tuned_text(tuned: tuple[str | Path, str] | None, settings: Mapping[str, Sequence[str]]) -> str:
    """The report's lines on the settings a ``reproduce --tuned OUT --rule R`` used ("" without ``--tuned``)."""
    if tuned is None:
        return ""
    out, rule = Path(tuned[0]), tuned[1]
    table = pd.read_csv(out / "selected.csv", dtype=str)
    lines = ["", f"**Tuned settings** (`mtlswin tune`, docs/tuning.md): rule {RULES[rule]}, from "
             f"`{out / 'selected.csv'}`:", ""]  # fmt: skip
    for r in table[table["rule"] == rule].itertuples():
        if r.row in settings:
            what = f"`{r.setting}` = {r.value} ({', '.join(settings[r.row])})"
        elif r.value == r.a_priori:
            what = (
                f"`{r.setting}` = {r.value}, its a-priori setting (selected again; trained as in the a-priori preset)"
            )
        else:
            what = f"did not learn at any setting; trained at its a-priori `{r.setting}` = {r.a_priori}"
        lines.append(f"- `{r.row}`: {what}")
    return "\n".join(lines) + "\n"
