"""``mtlswin report RUN... --out DIR``: the paper's Table 1 from evaluated runs, with figures.

Writes ``table1.md`` / ``table1.csv`` (rows = Table-1 rows, i.e. run names without a ``-seedN`` suffix; columns
seeds | runs that did not learn (:mod:`mtlswin.evaluation.learned`) | IoU | acc prec rec F1 AUC on test A | the
same on test B; F1 is the macro F1 as in the paper; mean ± sd over seeds), ``roc.png`` (ROC of every run on both test sets), ``training_curves.png`` (train loss, val AUC / IoU),
``confusion.png`` (confusion matrix per row and test set) and ``report.md`` linking them. A Grad-CAM audit
folder (``audit.md``, ``audit.csv``, ``gradcam_grid.png``), given or found in a run folder, is included.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix, roc_curve

from mtlswin.evaluation.learned import best_val_auc, is_classifier, learning_failure
from mtlswin.io import atomic_path, atomic_write_text, created_dir
from mtlswin.paper_table import TABLE1_LABELS
from mtlswin.runs import trained_name

__all__ = ["RunResult", "fmt_mean_sd", "load_results", "table1", "write_report"]

SPLITS = ("test_a", "test_b")
METRICS = ("acc", "precision", "recall", "f1_macro", "auc")
HEADERS = {"acc": "acc", "precision": "prec", "recall": "rec", "f1_macro": "F1", "auc": "AUC"}
PAPER_ORDER = tuple(TABLE1_LABELS)
_SEED_SUFFIX = re.compile(r"[-_]seed\d+$")


@dataclass
class RunResult:
    """What the report needs of one evaluated run folder."""

    path: Path
    name: str
    row: str  # Table-1 row: the name without a -seedN suffix
    metrics: dict = field(default_factory=dict)  # metrics.json
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)  # split -> predictions table
    log: pd.DataFrame | None = None  # logs/metrics.csv

    @property
    def not_learned(self) -> str:
        """Why the run did not learn, or "" (:mod:`mtlswin.evaluation.learned`)."""
        return learning_failure(best_val_auc(self.log), self.predictions)


def load_results(run: Path) -> RunResult:
    """Read ``metrics.json``, ``predictions/*.csv``, ``logs/metrics.csv`` and the run name of a run folder."""
    run = Path(run)
    if not (run / "metrics.json").is_file():
        raise ValueError(f"{str(run)!r} has no metrics.json: run `mtlswin evaluate {run}` first")
    name = trained_name(run)
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except ValueError as err:
        raise ValueError(
            f"{str(run / 'metrics.json')!r} does not parse ({err}); run `mtlswin evaluate {run}` again"
        ) from err
    result = RunResult(run, name, _SEED_SUFFIX.sub("", name), metrics)
    for split in SPLITS:
        path = run / "predictions" / f"{split}.csv"
        if path.is_file():
            result.predictions[split] = pd.read_csv(path)
    if (run / "logs" / "metrics.csv").is_file():
        result.log = pd.read_csv(run / "logs" / "metrics.csv")
    return result


def _row_order(rows: list[str]) -> list[str]:
    known = [r for r in PAPER_ORDER if r in rows]
    return known + [r for r in dict.fromkeys(rows) if r not in known]


def _columns() -> list[tuple[str, str]]:
    return [("test_a", "iou")] + [(s, m) for s in SPLITS for m in METRICS]


def table1(results: list[RunResult]) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """``(mean, sd, n_seeds)``: one row per Table-1 row, columns ``(split, metric)`` (IoU from test A)."""
    cols = _columns()
    records = {}
    for r in results:
        values = [r.metrics.get(s, {}).get(m) for s, m in cols]
        records.setdefault(r.row, []).append([np.nan if v is None else float(v) for v in values])
    rows = _row_order(list(records))
    index = pd.MultiIndex.from_tuples(cols)
    with warnings.catch_warnings():  # a column that is empty for a row (e.g. IoU of a classifier) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = pd.DataFrame([np.nanmean(records[r], axis=0) if _any(records[r]) else [np.nan] * len(cols) for r in rows],
                            index=rows, columns=index)  # fmt: skip
        sd = pd.DataFrame([np.nanstd(records[r], axis=0, ddof=1) if len(records[r]) > 1 else [np.nan] * len(cols)
                           for r in rows], index=rows, columns=index)  # fmt: skip
    return mean, sd, pd.Series({r: len(records[r]) for r in rows})


def _any(values: list[list[float]]) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=float)).any())


def fmt_mean_sd(mean: float, sd: float) -> str:
    """``.912 ± .018`` (the paper's style: no leading zero); the mean alone when ``sd`` is NaN; "" for NaN."""
    if not np.isfinite(mean):
        return ""
    text = f"{mean:.3f}".lstrip("0") if mean >= 0 else f"{mean:.3f}"
    return f"{text} ± {sd:.3f}".replace("± 0.", "± .") if np.isfinite(sd) else text


def not_learned_by_row(results: list[RunResult]) -> dict[str, list[str]]:
    """Table-1 row -> the names of its runs that did not learn."""
    out: dict[str, list[str]] = {}
    for r in results:
        if r.not_learned:
            out.setdefault(r.row, []).append(r.name)
    return out


def table1_markdown(mean: pd.DataFrame, sd: pd.DataFrame, n: pd.Series, flagged: dict | None = None) -> str:
    """The Markdown table in the paper's layout, with the runs of each row that did not learn."""
    flagged = flagged or {}
    head = ["Method", "seeds", "did not learn", "IoU"] + [f"{HEADERS[m]} {s[-1].upper()}" for s in SPLITS
                                                          for m in METRICS]  # fmt: skip
    lines = [
        "A = test A (held-out slices of hospital 1; the models trained on hospitals 1-4), B = test B (hospitals "
        "5-11); mean ± sd over seeds where there are several. *Did not learn*: runs with validation AUC <= 0.6 or "
        "one class predicted for >= 99% of a test set; they stay in the means.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in mean.index:
        cells = [fmt_mean_sd(mean.loc[row, c], sd.loc[row, c]) for c in mean.columns]
        label = f"{TABLE1_LABELS[row]} (`{row}`)" if row in TABLE1_LABELS else row
        runs = flagged.get(row, [])
        failed = f"**{len(runs)}** ({', '.join(runs)})" if runs else "0"
        lines.append(f"| {label} | {n[row]} | {failed} | " + " | ".join(cells) + " |")
    lines.append("\nF1 is the macro F1 over both classes (the paper's F1); positive-class F1 is in metrics.json.")
    return "\n".join(lines) + "\n"


def table1_csv(mean: pd.DataFrame, sd: pd.DataFrame, n: pd.Series, flagged: dict | None = None) -> pd.DataFrame:
    """Flat CSV: ``row, seeds, not_learned`` then ``<split>_<metric>`` and ``<split>_<metric>_sd``."""
    out = pd.DataFrame(index=mean.index)
    out["seeds"] = n
    out["not_learned"] = [";".join((flagged or {}).get(r, [])) for r in mean.index]
    for split, metric in mean.columns:
        out[f"{split}_{metric}"] = mean[(split, metric)]
        out[f"{split}_{metric}_sd"] = sd[(split, metric)]
    return out.rename_axis("row").reset_index()


def _not_learned_section(results: list[RunResult]) -> str:
    failed = [r for r in results if r.not_learned]
    classifiers = [r for r in results if is_classifier(r.log, r.predictions)]
    lines = ["## Runs that did not learn", "",
             f"{len(failed)} of {len(classifiers)} classifier runs did not learn (validation AUC <= 0.6, or one class "
             "predicted for >= 99% of a test set). They stay in every mean and every claim: a method that sometimes "
             "fails to train has that in its record."]  # fmt: skip
    if failed:
        lines += ["", "| run | why |", "|---|---|"] + [f"| {r.name} | {r.not_learned} |" for r in failed]
    return "\n".join(lines) + "\n"


def plot_roc(results: list[RunResult], path: Path) -> Path:
    """ROC curves of every run on test A and test B, one panel per test set."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, split in zip(axes, SPLITS):
        for r in results:
            table = r.predictions.get(split)
            if table is None or "prob" not in table or table["label"].nunique() < 2:
                continue
            fpr, tpr, _ = roc_curve(table["label"], table["prob"])
            auc = r.metrics.get(split, {}).get("auc")
            ax.plot(fpr, tpr, label=f"{r.name} (AUC {auc:.3f})" if auc is not None else r.name)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(
            title=f"ROC, {split}",
            xlabel="false positive rate",
            ylabel="true positive rate",
            xlim=(0, 1),
            ylim=(0, 1.01),
        )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def _epoch_series(log: pd.DataFrame, column: str) -> pd.Series:
    if column not in log:
        return pd.Series(dtype=float)
    return log.dropna(subset=[column]).groupby("epoch")[column].last()


def plot_training_curves(results: list[RunResult], path: Path) -> Path:
    """Per run: train loss per epoch, validation loss, and val AUC (or val IoU for segmentation-only runs)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for r in results:
        if r.log is None:
            continue
        for ax, col in zip(axes[:2], ("train/loss_epoch", "val/loss")):
            s = _epoch_series(r.log, col)
            if len(s):
                ax.plot(s.index, s.values, marker=".", label=r.name)
        score = "val/auc" if "val/auc" in r.log else "val/iou"
        s = _epoch_series(r.log, score)
        if len(s):
            axes[2].plot(s.index, s.values, marker=".", label=f"{r.name} ({score})")
    for ax, title in zip(axes, ("train loss", "validation loss", "validation AUC (IoU for seg-only)")):
        ax.set(title=title, xlabel="epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def plot_confusions(results: list[RunResult], path: Path) -> Path | None:
    """Confusion matrix of the first run of every row with predictions, on test A (top) and test B (bottom)."""
    firsts = {}
    for r in results:
        if r.row not in firsts and any("pred" in t for t in r.predictions.values()):
            firsts[r.row] = r
    if not firsts:
        return None
    rows = _row_order(list(firsts))
    fig, axes = plt.subplots(2, len(rows), figsize=(3.2 * len(rows), 6.2), squeeze=False)
    for j, row in enumerate(rows):
        for i, split in enumerate(SPLITS):
            ax, table = axes[i, j], firsts[row].predictions.get(split)
            if table is None or "pred" not in table:
                ax.axis("off")
                continue
            cm = confusion_matrix(table["label"], table["pred"], labels=[0, 1])
            ConfusionMatrixDisplay(cm, display_labels=["neg", "pos"]).plot(ax=ax, colorbar=False, values_format="d")
            ax.set_title(f"{row}\n{split}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def _find_audit(results: list[RunResult], audit: str | Path | None) -> Path | None:
    if audit is not None:
        if not Path(audit).is_dir():
            raise ValueError(f"--audit {str(audit)!r} is not a folder (expected audit.md, audit.csv, gradcam_grid.png)")
        return Path(audit)
    for r in results:
        if (r.path / "audit" / "audit.md").is_file():
            return r.path / "audit"
    return None


def _audit_section(audit: Path, out: Path) -> str:
    lines = ["", "## Attribution audit (where each model's evidence lies)", ""]
    if (audit / "audit.md").is_file():
        lines.append((audit / "audit.md").read_text().strip())
    for name in ("audit.csv", "gradcam_grid.png"):
        if (audit / name).is_file():
            with atomic_path(out / name) as tmp:
                shutil.copy2(audit / name, tmp)
    if (audit / "gradcam_grid.png").is_file():
        lines += ["", "![Attribution grid](gradcam_grid.png)"]
    return "\n".join(lines) + "\n"


def write_report(runs: list[Path], out: Path, audit: str | Path | None = None) -> Path:
    """Write the report of ``runs`` into ``out``; returns ``out/report.md``."""
    if not runs:
        raise ValueError("give at least one evaluated run folder")
    results = [load_results(r) for r in runs]
    with created_dir(out):
        mean, sd, n = table1(results)
        flagged = not_learned_by_row(results)
        markdown = table1_markdown(mean, sd, n, flagged)
        atomic_write_text(out / "table1.md", markdown)
        with atomic_path(out / "table1.csv") as tmp:
            table1_csv(mean, sd, n, flagged).to_csv(tmp, index=False)
        figures = [plot_roc(results, out / "roc.png"), plot_training_curves(results, out / "training_curves.png")]
        figures.append(plot_confusions(results, out / "confusion.png"))
        text = ["# Results (Table 1 layout)", "", markdown, _not_learned_section(results), "## Figures", ""]
        text += [f"![{p.stem}]({p.name})" for p in figures if p is not None]
        audit_dir = _find_audit(results, audit)
        report = "\n".join(text) + "\n" + (_audit_section(audit_dir, out) if audit_dir else "")
        atomic_write_text(out / "report.md", report)
    return out / "report.md"
