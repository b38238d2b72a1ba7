"""The dose-response of the shortcut: test-B AUC and cue sensitivity against the spurious strength.

``mtlswin reproduce --preset shortcut-sweep`` trains the same rows on phantoms that differ only in the
strength of the cue-label correlation in hospitals 1-4 (0, 0.5, 0.9). A model that learns the cue
loses more on test B (where the cue is independent of the label) and reacts more to the cue flip
the stronger the correlation; at strength 0 there is no shortcut, so plain Swin's test A - test B
drop should vanish. If it does not, the phantom carries a second shortcut (e.g. the hospitals'
scanners), which is a finding in itself.
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

from mtlswin.pipeline.claims import row_of
from mtlswin.pipeline.stages import time_table

__all__ = ["plot_sweep", "sweep_table", "write_sweep_report"]

PANELS = (("test_b", "auc", "test-B AUC"), ("test_b", "cue_sensitivity", "cue sensitivity on test B"),
          ("drop", "auc", "AUC test A - test B"))  # fmt: skip


def sweep_table(experiments: dict[float, Any]) -> pd.DataFrame:
    """One row per (strength, row, seed): test-A/B AUC, drop, cue sensitivity on test B (from metrics.json)."""
    records = []
    for strength, exp in experiments.items():
        for run in exp.runs:
            path = Path(run) / "metrics.json"
            if not path.is_file():
                continue
            metrics = json.loads(path.read_text())
            a, b = metrics.get("test_a", {}), metrics.get("test_b", {})
            if b.get("auc") is None:
                continue  # segmentation-only row
            records.append({
                "strength": strength, "row": row_of(run), "run": Path(run).name, "auc_a": a.get("auc"),
                "auc_b": b.get("auc"), "drop": (a.get("auc") or np.nan) - (b.get("auc") or np.nan),
                "cue_b": b.get("cue_sensitivity"), "cue_b_lo": (b.get("cue_sensitivity_ci95") or [None])[0],
                "cue_b_hi": (b.get("cue_sensitivity_ci95") or [None, None])[1],
            })  # fmt: skip
    return pd.DataFrame(records)


def plot_sweep(table: pd.DataFrame, path: Path) -> Path:
    """Three panels against the spurious strength, one line per row (mean over seeds)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    means = table.groupby(["row", "strength"], sort=True)[["auc_b", "cue_b", "drop"]].mean().reset_index()
    for ax, column, title in zip(axes, ("auc_b", "cue_b", "drop"), ("test-B AUC", "cue sensitivity (test B)",
                                                                       "AUC drop, test A - test B")):  # fmt: skip
        for row, frame in means.groupby("row", sort=False):
            ax.plot(frame["strength"], frame[column], marker="o", label=row)
        ax.set(title=title, xlabel="spurious strength (cue-label correlation in hospitals 1-4)")
        if column == "auc_b":
            ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_sweep_report(
    out: Path, preset: Any, experiments: dict[float, Any], timings: dict[str, float], skipped: Collection[str] = ()
) -> Path:
    """``out/sweep.csv``, ``out/shortcut_sweep.png`` and ``out/report.md`` (links to each strength's report)."""
    table = sweep_table(experiments)
    table.to_csv(out / "sweep.csv", index=False)
    plot_sweep(table, out / "shortcut_sweep.png")
    lines = [f"# mtlswin reproduce: preset `{preset.name}`", "", f"{preset.description}.", "",
             __doc__.split("\n\n", 1)[1].strip(), "", "![dose-response](shortcut_sweep.png)", "",
             "| strength | row | seeds | AUC A | AUC B | drop A-B | cue sensitivity B |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    grouped = table.groupby(["strength", "row"], sort=True)
    for (strength, row), frame in grouped:
        lines.append(f"| {strength:g} | `{row}` | {len(frame)} | {frame['auc_a'].mean():.3f} | "
                     f"{frame['auc_b'].mean():.3f} | {frame['drop'].mean():+.3f} | {frame['cue_b'].mean():.3f} |")  # fmt: skip
    lines += ["", "Each strength's own report, with its claims table and CIs (the A-B drop of plain Swin among "
              "them):", ""]  # fmt: skip
    for strength, exp in experiments.items():
        rel = Path(exp.out).relative_to(out)
        claims = Path(exp.out) / "claims.csv"
        drop = ""
        if claims.is_file():
            c = pd.read_csv(claims)
            sel = c[(c["statistic"] == "drop") & (c["row"] == "swin") & c["reference"].isna()]
            if len(sel):
                r = sel.iloc[0]
                if r.get("seeds", 2) >= 2:
                    drop = f": Swin's drop {r['estimate']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}], {r['verdict']}"
                else:  # one seed: only the patients' interval exists, and no verdict for the method
                    drop = (f": Swin's drop {r['estimate']:+.3f}, patient-only interval [{r['patient_low']:+.3f}, "
                            f"{r['patient_high']:+.3f}] (one seed: no verdict)")  # fmt: skip
        lines.append(f"- strength {strength:g}: [{rel}/report.md]({rel}/report.md){drop}")
    (out / "report.md").write_text("\n".join(lines) + "\n\n" + time_table(timings, skipped))
    return out / "report.md"
