"""``mtlswin plan OUT``: what deciding each claim would take, in seeds, runs and hours (issue 37).

From a finished reproduce folder (``OUT/claims.csv`` and the run folders ``OUT/runs/<row>-seed<k>/``), for each claim:

- ``sd``: the sample sd of the per-seed differences, and ``sd_upper``, its one-sided 80% upper confidence bound
  (chi-square; three seeds estimate an sd badly); ``patient_sd``: one test set's patient sd of a per-seed
  difference (``sqrt(v1)``, from the patient bootstrap);
- the seeds that give the two-sided t test (alpha .05) 80% power (:func:`mtlswin.stats.seeds_needed`, statsmodels'
  ``TTestPower``) at the paper's difference (``seeds_needed_paper`` from ``sd``, ``seeds_needed_paper_upper`` from
  ``sd_upper``) and at the estimate here (``seeds_needed_observed``);
- what those seeds cost: the runs of a seed (the claim's two rows and the rows they need, e.g. Joint-Swin's
  Swin-Unet) times their training seconds measured in this folder (the span of each run's TensorBoard events),
  divided by this machine's slots (``hours_here``; a derived row such as DFR counts as free), and, as stated assumptions, on one GPU assumed
  ``gpu_speedup`` times faster than one slot here (``hours_gpu``) and on ``nodes`` such GPUs (``hours_nodes``).

**Both estimands are priced.** "Data sets like it" (a phantom draw per seed, the demo's design) asks about the
method on data of this kind: its seeds average over draws, so the patients' noise shrinks with the seeds. "This
data set" (one shared draw, the paper's situation) asks about one data set: the test patients are the same for
every seed, so their term is a floor that no number of seeds lowers (``inf``: only a larger test set helps). The
sd measured under one design is borrowed for the other (from a draw per seed it includes the draws' own spread,
so "this data set" is priced conservatively; from a shared draw it lacks it, so "data sets like it" is a lower
bound); the column ``measured`` marks the design the folder ran.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtlswin.io import atomic_path, atomic_write_text
from mtlswin.pipeline.claims import Claim, row_of
from mtlswin.pipeline.rows import ROWS
from mtlswin.stats import sd_upper, seeds_needed

__all__ = [
    "ESTIMANDS",
    "Assumptions",
    "estimand_of",
    "folder_plan",
    "plan_markdown",
    "plan_table",
    "run_seconds",
    "with_roles",
    "write_plan",
]  # fmt: skip

# estimand -> whether its seeds share one test set (one phantom draw)
ESTIMANDS = {"data sets like it": False, "this data set": True}
PLAN_COLUMNS = ("row", "reference", "statistic", "seeds", "sd", "sd_upper", "seeds_needed_paper",
                "seeds_needed_paper_upper", "seeds_needed_observed", "hours_here")  # fmt: skip


@dataclass(frozen=True)
class Assumptions:
    """What the hours rest on: ``slots`` runs side by side here (the measured run times are at that load);
    ``gpu_speedup``: one GPU trains a run this many times faster than one slot here (assumed, not measured);
    ``nodes``: GPUs training seeds side by side; the test's ``alpha`` (two-sided) and ``power``."""

    slots: int
    gpu_speedup: float = 10.0
    nodes: int = 8
    alpha: float = 0.05
    power: float = 0.80

    def __post_init__(self) -> None:
        if self.slots < 1 or self.nodes < 1 or not self.gpu_speedup > 0:
            raise ValueError(f"slots and nodes must be >= 1 and gpu_speedup > 0, got {self}")


def run_seconds(run: Path) -> float:
    """Training seconds of a run folder: the span of the wall times of its TensorBoard events (summed over the
    event files of a resumed run); else model.safetensors' mtime minus config.yaml's; NaN when neither is there."""
    files = sorted((Path(run) / "logs").glob("events.out.tfevents.*"))
    if files:
        # the reader of TensorBoard's own package: the event files are TFRecord-framed protobufs
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        total = 0.0
        for path in files:
            times = [event.wall_time for event in EventFileLoader(str(path)).Load()]
            total += (max(times) - min(times)) if times else 0.0
        if total > 0:
            return total
    model, config = Path(run) / "model.safetensors", Path(run) / "config.yaml"
    if model.is_file() and config.is_file() and model.stat().st_mtime > config.stat().st_mtime:
        return model.stat().st_mtime - config.stat().st_mtime
    return float("nan")


def _row_seconds(runs: Iterable[Path]) -> dict[str, float]:
    """The median training seconds of each row's runs."""
    by_row: dict[str, list[float]] = {}
    for run in runs:
        seconds = run_seconds(run)
        if np.isfinite(seconds):
            by_row.setdefault(row_of(run), []).append(seconds)
    return {row: statistics.median(values) for row, values in by_row.items()}


def _rows_of_a_seed(*rows: str | None) -> list[str]:
    """The rows one seed of a claim trains: its rows and, recursively, the rows they need or derive from."""
    out: list[str] = []
    todo = [r for r in rows if r]
    while todo:
        row = todo.pop(0)
        if row in out:
            continue
        out.append(row)
        entry = ROWS.get(row)
        if entry is not None and entry.depends_on:
            todo.append(entry.depends_on)
    return out


def _per_seed(record: dict) -> np.ndarray:
    values = [record[k] for k in record if re.fullmatch(r"seed\d+", k)]
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def _patient_var_one_set(record: dict, d: np.ndarray, test_sets_default: int) -> tuple[float, int]:
    """``v1`` (one test set's patient variance of a per-seed difference) and the number of distinct test sets;
    from an older claims.csv without these columns, from ``se^2 - s^2 / K``."""
    k = d.size
    test_sets = record.get("test_sets")
    test_sets = int(test_sets) if test_sets is not None and np.isfinite(test_sets) else min(test_sets_default, k)
    v_mean = record.get("patient_var")
    if v_mean is None or not np.isfinite(v_mean):
        v_mean = max(float(record["se"]) ** 2 - d.var(ddof=1) / k, 0.0) if k >= 2 else float("nan")
    return float(v_mean) * max(test_sets, 1), test_sets  # the mean over g independent test sets has v1 / g


def estimand_of(claims: pd.DataFrame, draw_per_seed_default: bool = True) -> str:
    """The estimand a claims table answers: "data sets like it" when its seeds had test sets of their own."""
    if "test_sets" in claims and len(claims):
        return "data sets like it" if (claims["test_sets"] > 1).any() else "this data set"
    return "data sets like it" if draw_per_seed_default else "this data set"


def with_roles(claims: pd.DataFrame, tested: Iterable[Claim]) -> pd.DataFrame:
    """``claims`` with the ``role`` of each claim as ``tested`` names it, where the table (older than issue 37)
    does not record it."""
    if "role" in claims:
        return claims
    roles = {(c.statistic, c.row, c.reference or ""): c.role for c in tested}
    keys = zip(claims["statistic"], claims["row"], claims["reference"].fillna(""))
    return claims.assign(role=[roles.get(key, "secondary") for key in keys])


def plan_table(
    claims: pd.DataFrame, row_seconds: dict[str, float], assumptions: Assumptions, draw_per_seed: bool = True
) -> pd.DataFrame:
    """One line per claim and estimand (module docstring). ``draw_per_seed``: the folder's design, for a claims
    table of before issue 37 (which does not record its test sets)."""
    out = []
    for r in claims.to_dict("records"):
        d = _per_seed(r)
        k = d.size
        sd = float(d.std(ddof=1)) if k >= 2 else float("nan")
        upper = sd_upper(sd, k)
        v1, test_sets = _patient_var_one_set(r, d, k if draw_per_seed else 1)
        measured = "data sets like it" if test_sets > 1 else "this data set"
        paper = float(r.get("paper", float("nan")))
        estimate = float(r["estimate"])
        rows = _rows_of_a_seed(r["row"], r.get("reference") if isinstance(r.get("reference"), str) else None)
        seconds = [0.0 if ROWS.get(row) and ROWS[row].derived_from else row_seconds.get(row, float("nan"))
                   for row in rows]  # fmt: skip
        per_seed_s = float(sum(seconds))
        for estimand, shared in ESTIMANDS.items():

            def need(effect: float, s: float, shared: bool = shared, v1: float = v1) -> float:
                return seeds_needed(effect, s, v1, shared, assumptions.alpha, assumptions.power)

            n_paper, n_upper, n_observed = need(paper, sd), need(paper, upper), need(estimate, sd)
            priced, priced_at = (n_paper, "paper") if np.isfinite(paper) else (n_observed, "observed")
            slot_hours = priced * per_seed_s / 3600 if np.isfinite(priced) else priced
            out.append({
                "row": r["row"], "reference": r.get("reference") if isinstance(r.get("reference"), str) else "",
                "statistic": r["statistic"], "claim": r["claim"], "role": r.get("role", "secondary"),
                "estimand": estimand, "measured": estimand == measured, "seeds": k, "estimate": estimate, "sd": sd,
                "sd_upper": upper, "patient_sd": math.sqrt(v1) if np.isfinite(v1) else float("nan"), "paper": paper,
                "seeds_needed_paper": n_paper, "seeds_needed_paper_upper": n_upper,
                "seeds_needed_observed": n_observed, "priced_at": priced_at, "rows_per_seed": ";".join(rows),
                "seconds_per_seed": per_seed_s, "runs_needed": priced * len(rows),
                "hours_here": slot_hours / assumptions.slots, "hours_gpu": slot_hours / assumptions.gpu_speedup,
                "hours_nodes": slot_hours / assumptions.gpu_speedup / assumptions.nodes,
            })  # fmt: skip
    columns = [*PLAN_COLUMNS, *(c for c in (out[0] if out else {}) if c not in PLAN_COLUMNS)]
    return pd.DataFrame(out, columns=columns)


def _n(value: float) -> str:
    if not np.isfinite(value):
        return "never" if value == math.inf else "n/a"
    return f"{value:,.0f}"


def _h(value: float) -> str:
    if not np.isfinite(value):
        return "never" if value == math.inf else "n/a"
    return f"{value:,.1f}" if value >= 0.95 else f"{value:.2f}"


def _sd(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def _d(value: float) -> str:
    return f"{value:+.3f}".replace("0.", ".") if np.isfinite(value) else "n/a"


def plan_markdown(table: pd.DataFrame, assumptions: Assumptions, estimand: str) -> str:
    """The plan as the report shows it: the primary claims and the control first, both estimands each."""
    if table.empty:
        return "No claim has its rows in this folder (the rows run compare with nothing): nothing to plan.\n"
    other = next(e for e in ESTIMANDS if e != estimand)
    lines = [
        f'This run answers **"{estimand}"** ('
        + (
            "a phantom draw per seed: a verdict speaks for the method on data of this kind"
            if estimand == "data sets like it"
            else "one shared draw: a verdict speaks for this data set, as the paper's does"
        )
        + f'); the table prices "{other}" too. Seeds for 80% power of the two-sided t test (alpha '
        f"{assumptions.alpha:g}) on the per-seed differences (statsmodels' `TTestPower`), at the paper's difference "
        "from the sd measured here and from its 80% upper bound, and at the estimate here. Hours for the seeds at "
        f"the paper's difference (else the estimate), from the training time of each run measured in this folder: "
        f"here with {assumptions.slots} run(s) side by side; on one GPU **assumed** {assumptions.gpu_speedup:g} "
        f'times faster than one slot here (not measured); on {assumptions.nodes} such GPUs. "never": one shared '
        "test set's patients alone leave too much noise, or the difference is 0; only a larger test set helps. "
        "The full table: `plan.csv` (`mtlswin plan OUT`).",
        "",
        "| claim | comparison | family | estimand | seeds | sd [80% upper] | patient sd | paper | seeds needed: "
        "paper (sd upper) / observed | runs | hours here | one GPU | "
        f"{assumptions.nodes} GPUs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {"primary": 0, "control": 1, "secondary": 2}
    ranked = table.assign(_o=table["role"].map(order).fillna(3)).sort_values(["_o"], kind="stable")
    for r in ranked.to_dict("records"):
        comparison = f"`{r['row']}` - `{r['reference']}`" if r["reference"] else f"`{r['row']}`"
        est = r["estimand"] + (" (this run)" if r["measured"] else "")
        needed = (f"{_n(r['seeds_needed_paper'])} ({_n(r['seeds_needed_paper_upper'])}) / "
                  f"{_n(r['seeds_needed_observed'])}")  # fmt: skip
        sd = f"{_sd(r['sd'])} [{_sd(r['sd_upper'])}]" if np.isfinite(r["sd"]) else "n/a"
        lines.append(f"| {r['claim']} | {comparison} ({r['statistic']}) | {r['role']} | {est} | {r['seeds']} | {sd} | "
                     f"{_sd(r['patient_sd'])} | {_d(r['paper'])} | {needed} | {_n(r['runs_needed'])} | "
                     f"{_h(r['hours_here'])} | {_h(r['hours_gpu'])} | {_h(r['hours_nodes'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def folder_plan(out: Path, assumptions: Assumptions, tested: Iterable[Claim] = ()) -> tuple[pd.DataFrame, str]:
    """The plan of the reproduce folder ``out`` (``out/claims.csv``, ``out/runs/*``) and its Markdown."""
    out = Path(out)
    path = out / "claims.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `mtlswin reproduce --out {out}` first")
    claims = with_roles(pd.read_csv(path), tested)
    runs = sorted(p for p in (out / "runs").glob("*-seed*") if p.is_dir()) if (out / "runs").is_dir() else []
    draw_per_seed = (out / "data").is_dir()  # the layout of a draw per seed (OUT/data/seed-<k>/)
    table = plan_table(claims, _row_seconds(runs), assumptions, draw_per_seed)
    return table, plan_markdown(table, assumptions, estimand_of(claims, draw_per_seed))


def write_plan(out: Path, assumptions: Assumptions, tested: Iterable[Claim] = ()) -> Path:
    """``out/plan.csv`` and ``out/plan.md`` (:func:`folder_plan`); the path of plan.csv."""
    table, text = folder_plan(out, assumptions, tested)
    with atomic_path(Path(out) / "plan.csv") as tmp:
        table.to_csv(tmp, index=False)
    atomic_write_text(Path(out) / "plan.md", "# What deciding would take\n\n" + text)
    return Path(out) / "plan.csv"
