"""The claims table as the report shows it: estimate with its seed-aware interval, per-seed values (runs that
did not learn marked), the patient-only interval, power against the paper, verdict (:mod:`.claims` computes it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["claims_markdown", "signed"]


def signed(value: float) -> str:
    """``value`` as ``+.123`` / ``-.123`` (``n/a`` when not finite)."""
    return f"{value:+.3f}".replace("+0.", "+.").replace("-0.", "-.") if np.isfinite(value) else "n/a"


def _per_seed_cell(record: dict) -> str:
    flagged = set(filter(None, str(record.get("not_learned") or "").split(";")))
    cells = []
    for key in sorted((k for k in record if k.startswith("seed") and k[4:].isdigit()), key=lambda k: int(k[4:])):
        value = record[key]
        if value is None or not np.isfinite(value):
            continue
        runs = {f"{record['row']}-{key}", f"{record['reference']}-{key}"}
        cells.append(f"{key[4:]}: {signed(value)}" + (" †" if runs & flagged else ""))
    return ", ".join(cells)


def _power_cell(record: dict) -> str:
    mde = record.get("mde")
    if mde is None or not np.isfinite(mde):
        return "n/a"
    paper = record.get("paper")
    text = f"{mde:.3f}".removeprefix("0")
    if paper is None or not np.isfinite(paper):
        return text
    seen = "could have seen it" if abs(paper) >= mde else "**could not have seen it**"
    return f"{text}; paper {signed(paper)}: {seen}"


def _adjusted_cell(record: dict) -> str:
    adjusted = record.get("verdict_adjusted")
    if not isinstance(adjusted, str) or record.get("role") == "secondary":
        return "secondary"
    if record.get("role") == "control":
        return f"{adjusted} (control, full alpha)"
    p_holm = record.get("p_holm")
    finite = isinstance(p_holm, float) and np.isfinite(p_holm)
    return f"**{adjusted}**" + (f" (Holm p {p_holm:.3f})" if finite else "")


def claims_markdown(table: pd.DataFrame, n_resamples: int = 2000) -> str:
    """The claims table: estimate with its seed-aware interval, per-seed values (runs that did not learn
    marked †), the patient-only interval for comparison, power against the paper's difference, verdict."""
    lines = [
        "Each claim is a paired difference (row minus reference, or the row's own value): the mean over training "
        "seeds of the per-seed difference, each seed's rows scored on the same test slices. The 95% interval covers "
        "the **training seed and the test patients**: mean ± t(K-1) · sqrt(var of the per-seed differences / K + "
        f"patient-bootstrap variance of the mean), from {n_resamples:,} resamples of patients (`mtlswin.stats`). "
        "With three seeds it is wide: t(2) = 4.30. The patient-only interval, which treats the trained models as "
        "fixed, is shown for comparison; it says nothing about another training run. Verdict from the seed-aware "
        "interval only: *held* if it lies on the side the paper states, *did not hold* if on the other side, "
        "*inconclusive* if it contains 0. MDE: the smallest difference this experiment detects with 80% power; "
        "beside it the paper's own difference (its Table 1), and whether this experiment could have seen an effect "
        "of that size. † marks a seed where a run of the pair did not learn (val AUC <= 0.6, or one class "
        "predicted for >= 99% of a test set); it stays in the statistics. **Family**: the preset's primary claims "
        "are corrected together by Holm (adjusted verdict: Holm's step-down on their p-values, two-sided, family-wise "
        "alpha .05); the positive control is tested at full alpha outside the family; the other claims are "
        "secondary, unadjusted, to be read as exploratory.",
        "",
        "| claim | family | comparison | expected | estimate [95% CI, seeds + patients] | per seed | patient-only CI | "
        "MDE (80%) vs the paper | verdict | adjusted verdict (Holm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        comparison = f"`{r['row']}` - `{r['reference']}`" if r["reference"] else f"`{r['row']}`"
        comparison += f" ({r['statistic']})"
        est = f"{signed(r['estimate'])} [{signed(r['low'])}, {signed(r['high'])}]"
        patients = f"[{signed(r['patient_low'])}, {signed(r['patient_high'])}]"
        lines.append(f"| {r['claim']} | {r.get('role', 'secondary')} | {comparison} | {r['expected']} | {est} | "
                     f"{_per_seed_cell(r)} | {patients} | {_power_cell(r)} | **{r['verdict']}** | "
                     f"{_adjusted_cell(r)} |")  # fmt: skip
    flagged = sorted({run for r in table.to_dict("records") for run in str(r.get("not_learned") or "").split(";")
                      if run})  # fmt: skip
    lines += ["", f"Runs that did not learn, among the claims' rows: {len(flagged)}"
              + (f" ({', '.join(flagged)})." if flagged else ".")]  # fmt: skip
    no_map = sorted({run for r in table.to_dict("records") for run in str(r.get("maps_fail_sanity") or "").split(";")
                     if run and run != "nan"})  # fmt: skip
    if no_map:
        lines += ["", f"Runs whose attribution map fails its sanity check (not evidence; the claims on where the "
                  f"evidence lies are inconclusive for them): {', '.join(no_map)}."]  # fmt: skip
    control = [r for r in table.to_dict("records") if r.get("role") == "control"]
    if control and not all(r["verdict"] == "held" for r in control):
        lines += ["", "**The positive control did not hold**: this experiment did not see the shortcut every claim "
                  "rests on, so its verdicts on the primary claims say little."]  # fmt: skip
    return "\n".join(lines) + "\n"
