"""The paper's claims as paired comparisons with patient-bootstrap intervals, and a verdict for each.

Every row of an experiment is trained with the same seeds on the same data and scored on the same test
slices, so rows are compared by PAIRED differences: each bootstrap resample draws patients (with all
their slices; slices of one patient are not independent) from test A and from test B once, and scores
every row on that same draw. A statistic of a row is its mean over seeds; the interval is the
percentile interval of the row's statistic minus the reference row's over 2,000 resamples.

Statistics (``STATISTICS``): ``auc_a`` / ``auc_b`` (AUC on test A / B), ``drop`` (AUC A - AUC B, the
cost of the covariate shift), ``worst_group_b`` (the lowest accuracy over the (label, cue) groups of test
B at the run's threshold), ``cue_b`` (cue sensitivity on test B: mean |p(slice) - p(its cue-flipped
twin)|, :mod:`mtlswin.training.counterfactual`), ``energy_a`` (share of Grad-CAM energy inside the
hematoma mask on test A's masked slices, from the audit).

A claim *held* when its 95% interval lies wholly on the side the paper states, *did not hold* when it
lies wholly on the other side, and is *inconclusive* when it contains zero: never from the point
estimate alone. The interval's half-width is reported too: it is the smallest effect the experiment
could have seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtlswin.stats import fast_auc, resample_indices

__all__ = ["CLAIMS", "Claim", "Evidence", "claims_markdown", "evaluate_claims", "load_evidence", "row_of", "verdict"]

SEED_SUFFIX = "-seed"


@dataclass(frozen=True)
class Claim:
    """``row - reference`` of ``statistic`` is expected to have ``sign`` (+1 or -1); ``reference`` None: the
    statistic of ``row`` itself is compared with zero."""

    text: str
    statistic: str
    row: str
    reference: str | None = "swin"
    sign: int = 1


# The paper's claims (SPEC "Claims"; Grad-CAM in the method section) and the shortcut they rest on.
CLAIMS: tuple[Claim, ...] = (
    Claim("Swin Transformer loses AUC under the covariate shift (test A - test B > 0)", "drop", "swin", None, 1),
    Claim("MTL-Swin-Unet (cls+seg) has a higher AUC than Swin on test A", "auc_a", "mtl_cls_seg"),
    Claim("MTL-Swin-Unet (cls+seg) has a higher AUC than Swin on test B", "auc_b", "mtl_cls_seg"),
    Claim("MTL-Swin-Unet (cls+seg+rec) has a higher AUC than Swin on test B", "auc_b", "mtl_cls_seg_rec"),
    Claim("Joint-SwinTransformer has a higher AUC than Swin on test B", "auc_b", "joint_swin"),
    Claim("MTL-Swin-Unet (cls+seg) loses less AUC under the shift than Swin", "drop", "mtl_cls_seg", "swin", -1),
    Claim(
        "MTL-Swin-Unet (cls+seg) has a higher worst-group accuracy than Swin on test B", "worst_group_b", "mtl_cls_seg"
    ),
    Claim(
        "MTL-Swin-Unet (cls+seg) is less sensitive to the spurious cue than Swin", "cue_b", "mtl_cls_seg", "swin", -1
    ),
    Claim("Joint-SwinTransformer is less sensitive to the spurious cue than Swin", "cue_b", "joint_swin", "swin", -1),
    Claim("MTL-Swin-Unet (cls+seg)'s Grad-CAM lies more on the hematoma than Swin's", "energy_a", "mtl_cls_seg"),
    Claim("Joint-SwinTransformer's Grad-CAM lies more on the hematoma than Swin's", "energy_a", "joint_swin"),
)
STATISTICS = ("auc_a", "auc_b", "drop", "worst_group_b", "cue_b", "energy_a")


@dataclass
class Evidence:
    """Per-slice scores of every row and seed, aligned on the same test slices.

    ``base[split]``: one row per slice (``index, patient_id, label, cue``), sorted by index;
    ``prob[row][split]``, ``twin[row][split]``: ``(seeds, slices)`` probabilities of the slice / its twin;
    ``energy[row]``: ``(seeds, masked slices)`` Grad-CAM energy in mask on ``base_energy`` (test A).
    """

    base: dict[str, pd.DataFrame]
    prob: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    twin: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    threshold: dict[str, float] = field(default_factory=dict)
    energy: dict[str, np.ndarray] = field(default_factory=dict)
    base_energy: pd.DataFrame | None = None


def row_of(run: Path) -> str:
    """Table-1 row of a run folder named ``<row>-seed<k>``."""
    name = Path(run).name
    return name.rsplit(SEED_SUFFIX, 1)[0] if SEED_SUFFIX in name else name


def _aligned(frames: list[pd.DataFrame], column: str, index: np.ndarray) -> np.ndarray:
    out = np.full((len(frames), len(index)), np.nan)
    for k, frame in enumerate(frames):
        if column in frame:
            out[k] = frame.set_index("index")[column].reindex(index).to_numpy(dtype=np.float64)
    return out


def load_evidence(runs: list[Path], audit_slices: Path | None = None) -> Evidence:
    """Gather ``predictions/test_{a,b}.csv`` of evaluated classifier runs (and the audit's per-slice CSV)."""
    by_row: dict[str, list[Path]] = {}
    for run in runs:
        if (Path(run) / "predictions" / "test_b.csv").is_file():
            by_row.setdefault(row_of(run), []).append(Path(run))
    base: dict[str, pd.DataFrame] = {}
    evidence = Evidence(base=base)
    for row, row_runs in by_row.items():
        frames = {s: [pd.read_csv(r / "predictions" / f"{s}.csv") for r in row_runs] for s in ("test_a", "test_b")}
        if "prob" not in frames["test_b"][0]:
            continue  # segmentation-only row
        for split, split_frames in frames.items():
            if split not in base:
                cols = [c for c in ("index", "patient_id", "label", "cue") if c in split_frames[0]]
                base[split] = split_frames[0][cols].sort_values("index").reset_index(drop=True)
            idx = base[split]["index"].to_numpy()
            evidence.prob.setdefault(row, {})[split] = _aligned(split_frames, "prob", idx)
            evidence.twin.setdefault(row, {})[split] = _aligned(split_frames, "prob_twin", idx)
        config = json.loads((row_runs[0] / "metrics.json").read_text()).get("test_b", {})
        evidence.threshold[row] = float(config.get("threshold", 0.5))
    if audit_slices is not None and Path(audit_slices).is_file():
        _add_energy(evidence, pd.read_csv(audit_slices), by_row)
    return evidence


def _add_energy(evidence: Evidence, scores: pd.DataFrame, by_row: dict[str, list[Path]]) -> None:
    first = scores.drop_duplicates("index").sort_values("index")
    evidence.base_energy = first[["index", "patient_id"]].reset_index(drop=True)
    idx = evidence.base_energy["index"].to_numpy()
    for row, row_runs in by_row.items():
        frames = [scores[scores["model"] == r.name] for r in row_runs]
        if all(len(f) for f in frames):
            evidence.energy[row] = _aligned(frames, "energy_in_mask", idx)


def _worst_group(y: np.ndarray, pred: np.ndarray, cue: np.ndarray) -> float:
    accs = [float((pred[sel] == label).mean()) for label in (0, 1) for c in (0, 1)
            if (sel := (y == label) & (cue == c)).any()]  # fmt: skip
    return min(accs) if accs else float("nan")


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _statistic(ev: Evidence, row: str, name: str, ia: np.ndarray, ib: np.ndarray, ie: np.ndarray | None) -> float:
    """``name`` of ``row`` (mean over seeds) on the test-A rows ``ia``, test-B rows ``ib``, audit rows ``ie``."""
    a, b = ev.base["test_a"], ev.base["test_b"]
    ya, yb = a["label"].to_numpy()[ia], b["label"].to_numpy()[ib]
    pa, pb = ev.prob[row]["test_a"][:, ia], ev.prob[row]["test_b"][:, ib]
    if name == "auc_a":
        return _nanmean([fast_auc(ya, p) for p in pa])
    if name == "auc_b":
        return _nanmean([fast_auc(yb, p) for p in pb])
    if name == "drop":
        return _nanmean([fast_auc(ya, p) - fast_auc(yb, q) for p, q in zip(pa, pb)])
    if name == "worst_group_b":
        if "cue" not in b:
            return float("nan")
        cue, t = b["cue"].to_numpy()[ib], ev.threshold.get(row, 0.5)
        return _nanmean([_worst_group(yb, (p >= t).astype(int), cue) for p in pb])
    if name == "cue_b":
        return float(np.nanmean(np.abs(pb - ev.twin[row]["test_b"][:, ib]))) if np.isfinite(pb).any() else np.nan
    if name == "energy_a":
        if row not in ev.energy or ie is None:
            return float("nan")
        return float(np.nanmean(ev.energy[row][:, ie]))
    raise ValueError(f"unknown statistic {name!r}; choose one of {STATISTICS}")


def _draws(ev: Evidence, n_resamples: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    a, b = ev.base["test_a"], ev.base["test_b"]
    da = resample_indices(len(a), a["patient_id"].to_numpy(), n_resamples, seed)
    db = resample_indices(len(b), b["patient_id"].to_numpy(), n_resamples, seed + 1)
    if ev.base_energy is None:
        return [(x, y, None) for x, y in zip(da, db)]
    de = resample_indices(len(ev.base_energy), ev.base_energy["patient_id"].to_numpy(), n_resamples, seed + 2)
    return list(zip(da, db, de))


def evaluate_claims(
    ev: Evidence, claims: tuple[Claim, ...] = CLAIMS, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """One row per claim whose rows are present: estimate, interval, half-width, verdict."""
    full = (
        np.arange(len(ev.base["test_a"])),
        np.arange(len(ev.base["test_b"])),
        None if ev.base_energy is None else np.arange(len(ev.base_energy)),
    )
    draws = _draws(ev, n_resamples, seed)
    cache: dict[tuple[str, str], np.ndarray] = {}

    def values(row: str, stat: str) -> np.ndarray:
        if (row, stat) not in cache:
            cache[(row, stat)] = np.array([_statistic(ev, row, stat, *d) for d in draws])
        return cache[(row, stat)]

    out = []
    for claim in claims:
        rows = [claim.row] + ([claim.reference] if claim.reference else [])
        if any(r not in ev.prob for r in rows):
            continue

        def diff(d: tuple, c: Claim = claim) -> float:
            reference = _statistic(ev, c.reference, c.statistic, *d) if c.reference else 0.0
            return _statistic(ev, c.row, c.statistic, *d) - reference

        estimate = diff(full)
        resampled = values(claim.row, claim.statistic) - (values(claim.reference, claim.statistic)
                                                           if claim.reference else 0.0)  # fmt: skip
        finite = resampled[np.isfinite(resampled)]
        low, high = (np.quantile(finite, [(1 - level) / 2, (1 + level) / 2]) if finite.size > 1
                     else (np.nan, np.nan))  # fmt: skip
        out.append({
            "claim": claim.text, "statistic": claim.statistic, "row": claim.row, "reference": claim.reference or "",
            "expected": "> 0" if claim.sign > 0 else "< 0", "estimate": estimate, "low": float(low),
            "high": float(high), "half_width": float(high - low) / 2, "verdict": verdict(low, high, claim.sign),
        })  # fmt: skip
    return pd.DataFrame(out)


def verdict(low: float, high: float, sign: int) -> str:
    """``held`` / ``did not hold`` / ``inconclusive`` from where the interval lies relative to zero."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive (no interval)"
    if low > 0 or high < 0:
        return "held" if (low > 0) == (sign > 0) else "did not hold"
    return "inconclusive"


def claims_markdown(table: pd.DataFrame, n_resamples: int = 2000) -> str:
    """The claims table: claim, comparison, estimate [95% CI], half-width, verdict."""
    lines = [
        "Each claim is a paired difference (row minus reference, or the row's own value), mean over seeds, with a "
        f"95% percentile-bootstrap interval from {n_resamples:,} resamples of PATIENTS of each test set (all rows "
        "scored on the same draw). Verdict from the interval only: *held* if it lies on the side the paper states, "
        "*did not hold* if on the other side, *inconclusive* if it contains 0. The half-width is the smallest "
        "effect this experiment could have detected.",
        "",
        "| claim | statistic | comparison | expected | estimate [95% CI] | half-width | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        comparison = f"`{r['row']}` - `{r['reference']}`" if r["reference"] else f"`{r['row']}`"
        est = f"{r['estimate']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"
        lines.append(f"| {r['claim']} | {r['statistic']} | {comparison} | {r['expected']} | {est} | "
                     f"{r['half_width']:.3f} | **{r['verdict']}** |")  # fmt: skip
    return "\n".join(lines) + "\n"
