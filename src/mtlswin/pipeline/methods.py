"""The alternatives' stages and tables (``reproduce --preset methods`` and ``--preset mask-budget``).

- the cue probe of every classifier on test B (:func:`mtlswin.posthoc.cue_probe.cue_probe`);
- the methods table: per row, mean ± sd over seeds of AUC on test A, B and the trap test set, worst-group
  accuracy on test B (the (label, cue) group the run classifies worst, at its threshold), cue sensitivity on
  test B (the twins) and the cue probe's AUC, with the runs that did not learn;
- the mask-budget report: test-B and test-trap AUC against the share of training masks kept.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mtlswin.evaluation.learned import run_learning_failure
from mtlswin.evaluation.report import fmt_mean_sd
from mtlswin.io import atomic_path, atomic_write_text
from mtlswin.pipeline.claims import row_of
from mtlswin.pipeline.stages import time_table
from mtlswin.posthoc.cue_probe import cue_probe

__all__ = ["COLUMNS", "cue_probe_ok", "methods_markdown", "methods_table", "run_cue_probe",
           "write_budget_report"]  # fmt: skip

# column -> (metrics.json split, key) or the cue probe's AUC
COLUMNS = {
    "auc_a": ("test_a", "auc"),
    "auc_b": ("test_b", "auc"),
    "auc_trap": ("test_trap", "auc"),
    "worst_group_b": ("test_b", "group_acc"),
    "cue_b": ("test_b", "cue_sensitivity"),
    "cue_probe_b": ("cue_probe", "auc"),
}
HEADERS = {"auc_a": "AUC A", "auc_b": "AUC B", "auc_trap": "AUC trap", "worst_group_b": "worst-group acc B",
           "cue_b": "cue sensitivity B", "cue_probe_b": "cue probe AUC B"}  # fmt: skip


def _newer(path: Path, than: Path) -> bool:
    return path.is_file() and than.is_file() and path.stat().st_mtime >= than.stat().st_mtime


def cue_probe_ok(run: Path) -> bool:
    return _newer(run / "cue_probe.json", run / "model.safetensors")


def run_cue_probe(run: Path) -> None:
    cue_probe(run, "test_b")


def _value(run: Path, metrics: dict, column: str) -> float:
    split, key = COLUMNS[column]
    if split == "cue_probe":
        path = run / "cue_probe.json"
        return float(json.loads(path.read_text()).get("auc", np.nan)) if path.is_file() else np.nan
    value = metrics.get(split, {}).get(key)
    if isinstance(value, dict):  # group_acc: {"groups": ..., "worst_group_acc": ...}
        value = value.get("worst_group_acc")
    return np.nan if value is None else float(value)


def methods_table(runs: list[Path]) -> pd.DataFrame:
    """One row per run: ``row, run, not_learned`` and the values of :data:`COLUMNS`."""
    records = []
    for run in map(Path, runs):
        path = run / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        if metrics.get("test_b", {}).get("auc") is None:
            continue  # segmentation only
        record: dict[str, Any] = {"row": row_of(run), "run": run.name, "not_learned": run_learning_failure(run)}
        record |= {c: _value(run, metrics, c) for c in COLUMNS}
        records.append(record)
    return pd.DataFrame(records)


def _cell(values: pd.Series) -> str:
    """Mean ± sd over seeds (the mean alone for one seed), as the results table writes them."""
    values = values.dropna()
    return fmt_mean_sd(values.mean(), values.std(ddof=1)) if len(values) else ""


def methods_markdown(table: pd.DataFrame, labels: dict[str, str]) -> str:
    """Mean ± sd over seeds per row, in ``labels``' order; the runs that did not learn counted."""
    head = ["method", "seeds", "did not learn", *HEADERS.values()]
    lines = [
        "Mean ± sd over seeds (each seed on its own phantom draw). Trap: hospitals whose cue is ANTI-correlated with "
        "the label (a model that uses the cue scores below 0.5 there). Worst-group accuracy: the (label, cue) group "
        "of test B a run classifies worst. Cue sensitivity: mean |p(slice) - p(its cue-flipped twin)|. Cue probe: "
        "out-of-fold AUC of a logistic regression predicting the cue from the frozen pooled features on test B "
        "(how much of the cue the representation carries, whether or not the output uses it).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    order = [r for r in labels if r in set(table["row"])] + sorted(set(table["row"]) - set(labels))
    for row in order:
        part = table[table["row"] == row]
        failed = part.loc[part["not_learned"] != "", "run"].tolist()
        cells = [_cell(part[c]) for c in COLUMNS]
        label = f"{labels.get(row, row)} (`{row}`)"
        lines.append(f"| {label} | {len(part)} | {len(failed)}{' (' + ', '.join(failed) + ')' if failed else ''} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_budget_report(
    out: Path, preset: Any, experiments: dict[float, Any], timings: dict[str, float], skipped: Collection[str] = ()
) -> Path:
    """``out/mask_budget.csv``, ``out/mask_budget.png`` (test-B and test-trap AUC against the budget) and
    ``out/report.md``."""
    frames = [methods_table(exp.runs).assign(budget=budget) for budget, exp in experiments.items()]
    table = pd.concat(frames, ignore_index=True)
    with atomic_path(out / "mask_budget.csv") as tmp:
        table.to_csv(tmp, index=False)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, column, title in zip(axes, ("auc_b", "auc_trap"), ("test-B AUC", "test-trap AUC")):
        for row, part in table.groupby("row", sort=False):
            ax.scatter(part["budget"], part[column], alpha=0.4, s=14)
            means = part.groupby("budget")[column].mean()
            ax.plot(means.index, means.values, marker="o", label=f"{row} (mean over seeds)")
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set(title=title, xlabel="share of the training slices with a mask that keep it", xscale="log")
        ax.set_xticks(sorted(experiments), [f"{b:g}" for b in sorted(experiments)])
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "mask_budget.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    lines = [f"# mtlswin reproduce: preset `{preset.name}`", "", f"{preset.description}.", "",
             "![mask budget](mask_budget.png)", "", "| budget | row | seeds | did not learn | AUC A | AUC B | AUC trap | "
             "worst-group acc B | cue sensitivity B |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (budget, row), part in table.groupby(["budget", "row"], sort=False):
        failed = int((part["not_learned"] != "").sum())
        cells = " | ".join(_cell(part[c]) for c in ("auc_a", "auc_b", "auc_trap", "worst_group_b", "cue_b"))
        lines.append(f"| {budget:g} | `{row}` | {len(part)} | {failed} | {cells} |")
    lines += ["", "Each budget's own report: " + ", ".join(
        f"[{b:g}]({Path(e.out).relative_to(out)}/report.md)" for b, e in experiments.items())]  # fmt: skip
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n\n" + time_table(timings, skipped))
    return out / "report.md"
