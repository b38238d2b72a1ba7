"""The paper's claims as paired comparisons with seed-aware intervals, and a verdict for each.

This module only says which statistic of which rows is compared; the interval is
:func:`mtlswin.stats.seed_interval` (its docstring gives the formula and why). Rows trained with the same
seed are scored on the same test slices (with one phantom draw per seed, that seed's draw), so rows are
compared by PAIRED differences: per seed k, ``d_k`` = the row's statistic minus the reference's on seed
k's test sets; each patient resample draws patients (with all their slices) once per test set and scores
every row of that seed on the same draw. The estimate is the mean of ``d_k`` over seeds; the interval
covers both the training seed and the test patients. The per-seed ``d_k`` and the runs that did not learn
(:mod:`mtlswin.evaluation.learned`) are columns of the table.

Statistics (``STATISTICS``): ``auc_a`` / ``auc_b`` / ``auc_trap`` (AUC on test A / B / the trap test set,
whose cue is anti-correlated with the label), ``drop`` (AUC A - AUC B, the
cost of the covariate shift), ``worst_group_b`` (the lowest accuracy over the (label, cue) groups of test
B at the run's threshold), ``cue_b`` (cue sensitivity on test B: mean |p(slice) - p(its cue-flipped
twin)|, :mod:`mtlswin.evaluation.counterfactual`), ``energy_a`` (the share of the attribution map's energy
inside the hematoma mask as a multiple of the mask's area, 1 = chance, on test A's masked slices, from the
audit) and ``cue_energy_a`` (the same for the cue region: the pixels where a slice and its cue-flipped twin differ).

A claim *held* when its 95% interval lies wholly on the side the paper states, *did not hold* when it
lies wholly on the other side, and is *inconclusive* when it contains zero: never from the point
estimate alone; with a single seed there is no interval over seeds and the verdict is inconclusive.
Beside each claim: the minimum detectable effect (80% power) and, for AUC claims, the paper's own
difference (its Table 1), so a reader sees when this experiment could not have seen the paper's effect.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtlswin.evaluation.learned import run_learning_failure
from mtlswin.evaluation.metrics import group_accuracy
from mtlswin.paper_table import PAPER_AUC
from mtlswin.runs import stored_setting
from mtlswin.stats import fast_auc, percentile_interval, resample_indices, seed_interval

__all__ = [
    "CLAIMS",
    "CLAIM_COLUMNS",
    "Claim",
    "Evidence",
    "SeedEvidence",
    "evaluate_claims",
    "load_evidence",
    "method_claims",
    "row_of",
    "seed_of",
    "verdict",
]

SEED_SUFFIX = "-seed"


ROLES = ("primary", "control", "secondary")
# The columns of claims.csv before the per-seed differences (seed<k>) and after them.
CLAIM_COLUMNS = (
    "claim",
    "statistic",
    "row",
    "reference",
    "expected",
    "estimate",
    "low",
    "high",
    "half_width",
    "se",
    "seeds",
    "verdict",
    "df",
    "t",
    "p",
    "patient_var",
    "patient_df",
    "test_sets",
    "role",
    "sign",
    "patient_low",
    "patient_high",
    "mde",
    "paper",
    "paper_detectable",
    "not_learned",
    "n_not_learned",
    "maps_fail_sanity",
)


@dataclass(frozen=True)
class Claim:
    """``row - reference`` of ``statistic`` is expected to have ``sign`` (+1 or -1); ``reference`` None: the
    statistic of ``row`` itself is compared with zero. ``role``: ``primary`` (the family that Holm's correction
    and ``reproduce --until-decided`` cover), ``control`` (a positive control, tested at full alpha outside the
    family) or ``secondary`` (reported unadjusted; :mod:`mtlswin.pipeline.claim_families`)."""

    text: str
    statistic: str
    row: str
    reference: str | None = "swin"
    sign: int = 1
    role: str = "secondary"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"claim role must be one of {ROLES}, got {self.role!r}")


# The paper's claims (SPEC "Claims"; Grad-CAM in the method section) and the shortcut they rest on. Primary: the
# headline, MTL-Swin-Unet (cls+seg) and Joint-Swin against Swin on test-B AUC; the positive control: Swin's
# A - B drop (the shortcut the experiment must be able to see); the rest secondary.
_SHORTCUT = "Swin Transformer loses AUC under the covariate shift (test A - test B > 0)"
CLAIMS: tuple[Claim, ...] = (
    Claim(_SHORTCUT, "drop", "swin", None, role="control"),
    Claim("MTL-Swin-Unet (cls+seg) has a higher AUC than Swin on test A", "auc_a", "mtl_cls_seg"),
    Claim("MTL-Swin-Unet (cls+seg) has a higher AUC than Swin on test B", "auc_b", "mtl_cls_seg", role="primary"),
    Claim("MTL-Swin-Unet (cls+seg+rec) has a higher AUC than Swin on test B", "auc_b", "mtl_cls_seg_rec"),
    Claim("Joint-SwinTransformer has a higher AUC than Swin on test B", "auc_b", "joint_swin", role="primary"),
    Claim("MTL-Swin-Unet (cls+seg) loses less AUC under the shift than Swin", "drop", "mtl_cls_seg", "swin", -1),
    Claim(
        "MTL-Swin-Unet (cls+seg) has a higher worst-group accuracy than Swin on test B", "worst_group_b", "mtl_cls_seg"
    ),
    Claim(
        "MTL-Swin-Unet (cls+seg) is less sensitive to the spurious cue than Swin", "cue_b", "mtl_cls_seg", "swin", -1
    ),
    Claim("Joint-SwinTransformer is less sensitive to the spurious cue than Swin", "cue_b", "joint_swin", "swin", -1),
    Claim("MTL-Swin-Unet (cls+seg)'s evidence lies more on the hematoma than Swin's", "energy_a", "mtl_cls_seg"),
    Claim("Joint-SwinTransformer's evidence lies more on the hematoma than Swin's", "energy_a", "joint_swin"),
    Claim(
        "MTL-Swin-Unet (cls+seg)'s evidence lies less on the cue than Swin's", "cue_energy_a", "mtl_cls_seg", "swin", -1
    ),
    Claim(
        "Joint-SwinTransformer's evidence lies less on the cue than Swin's", "cue_energy_a", "joint_swin", "swin", -1
    ),
)
# The alternatives' comparisons: each method against Swin, and MTL-Swin-Unet against each method,
# on what a reviewer asks: AUC on the shifted and on the trap test set, worst-group accuracy, cue sensitivity.
METHOD_STATISTICS = (("auc_b", 1, "a higher AUC on test B"), ("auc_trap", 1, "a higher AUC on the trap test set"),
                     ("worst_group_b", 1, "a higher worst-group accuracy on test B"),
                     ("cue_b", -1, "a lower cue sensitivity"))  # fmt: skip


def method_claims(methods: tuple[str, ...], reference: str = "swin", mtl: str = "mtl_cls_seg") -> tuple[Claim, ...]:
    """``method - reference`` for every method (MTL included), then ``mtl - method`` for every other method.
    Primary: each method against ``reference`` on the trap test set's AUC; the rest secondary."""
    out = [Claim(f"`{m}` has {text} than `{reference}`", stat, m, reference, sign,
                 role="primary" if stat == "auc_trap" else "secondary")
           for m in methods for stat, sign, text in METHOD_STATISTICS]  # fmt: skip
    out += [Claim(f"`{mtl}` has {text} than `{m}`", stat, mtl, m, sign)
            for m in methods if m != mtl for stat, sign, text in METHOD_STATISTICS]  # fmt: skip
    return tuple(out)


STATISTICS = ("auc_a", "auc_b", "auc_trap", "drop", "worst_group_b", "cue_b", "energy_a", "cue_energy_a")
ENERGY_OF = {"energy_a": "mask_x_chance", "cue_energy_a": "cue_x_chance"}  # statistic -> the audit's slice column
AUC_OF = {"auc_a": "test_a", "auc_b": "test_b", "auc_trap": "test_trap"}
# the test sets (or "energy": the audit's slices of test A) whose patients a statistic's bootstrap resamples
SETS_OF = {**{k: (v,) for k, v in AUC_OF.items()}, "drop": ("test_a", "test_b"), "worst_group_b": ("test_b",),
           "cue_b": ("test_b",), "energy_a": ("energy",), "cue_energy_a": ("energy",)}  # fmt: skip
TEST_SETS = ("test_a", "test_b", "test_trap")  # test_trap: where the phantom has trap hospitals


@dataclass
class SeedEvidence:
    """Per-slice scores of every row trained with one seed, aligned on that seed's test slices.

    ``base[split]``: one row per slice (``index, patient_id, label, cue``), sorted by index;
    ``prob[row][split]``, ``twin[row][split]``: ``(slices,)`` probabilities of the slice / its twin;
    ``energy[statistic][row]``: ``(masked slices,)`` the audit's energy in the mask (``energy_a``) or the cue
    region (``cue_energy_a``), x chance, on ``base_energy`` (test A).
    """

    base: dict[str, pd.DataFrame]
    prob: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    twin: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    threshold: dict[str, float] = field(default_factory=dict)
    energy: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    base_energy: pd.DataFrame | None = None
    source: str = ""  # where the test slices come from (the runs' manifest): seeds of one source are paired
    _columns: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def column(self, split: str, name: str) -> np.ndarray:
        """``base[split][name]`` as an array, read once (the bootstrap asks for it thousands of times)."""
        if (split, name) not in self._columns:
            self._columns[(split, name)] = self.base[split][name].to_numpy()
        return self._columns[(split, name)]

    def fingerprint(self) -> tuple:
        """Equal for seeds scored on the same test slices: they share each patient resample (paired)."""
        parts: list[tuple] = [("source", self.source)]
        parts += [(s, tuple(f["index"]), tuple(f["patient_id"].astype(str)), tuple(f["label"]))
                  for s, f in sorted(self.base.items())]  # fmt: skip
        if self.base_energy is not None:
            parts.append(("energy", tuple(self.base_energy["index"])))
        return tuple(parts)


@dataclass
class Evidence:
    """Every seed's :class:`SeedEvidence` and the runs that did not learn (run name -> reason)."""

    seeds: dict[int, SeedEvidence] = field(default_factory=dict)
    not_learned: dict[str, str] = field(default_factory=dict)
    maps_fail_sanity: set[str] = field(default_factory=set)  # runs whose audit map failed its sanity check


def row_of(run: Path) -> str:
    """Table-1 row of a run folder named ``<row>-seed<k>``."""
    name = Path(run).name
    return name.rsplit(SEED_SUFFIX, 1)[0] if SEED_SUFFIX in name else name


def seed_of(run: Path) -> int:
    """Training seed of a run folder named ``<row>-seed<k>`` (0 without the suffix)."""
    tail = Path(run).name.rsplit(SEED_SUFFIX, 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


def _aligned(frame: pd.DataFrame, column: str, index: np.ndarray) -> np.ndarray:
    if column not in frame:
        return np.full(len(index), np.nan)
    return frame.set_index("index")[column].reindex(index).to_numpy(dtype=np.float64)


def load_evidence(runs: list[Path], audit_slices: Path | None = None) -> Evidence:
    """Gather ``predictions/test_{a,b}.csv`` of evaluated classifier runs (and the audit's per-slice CSV),
    grouped by training seed; each seed's slices come from its own runs (its own phantom draw, if any)."""
    evidence = Evidence()
    scores = pd.read_csv(audit_slices) if audit_slices is not None and Path(audit_slices).is_file() else None
    if scores is not None:
        evidence.maps_fail_sanity = _failing_maps(Path(audit_slices).with_name("audit.csv"))
    for run in map(Path, runs):
        if not (run / "predictions" / "test_b.csv").is_file():
            continue
        frames = {s: pd.read_csv(path) for s in TEST_SETS if (path := run / "predictions" / f"{s}.csv").is_file()}
        if "prob" not in frames["test_b"]:
            continue  # segmentation-only row
        row, seed = row_of(run), seed_of(run)
        ev = evidence.seeds.setdefault(
            seed, SeedEvidence(base={}, source=stored_setting(run, "data", "manifest") or "")
        )
        if row in ev.prob:
            raise ValueError(f"two runs of row {row!r} with seed {seed} ({run}); give each seed once")
        for split, frame in frames.items():
            if split not in ev.base:
                cols = [c for c in ("index", "patient_id", "label", "cue") if c in frame]
                ev.base[split] = frame[cols].sort_values("index").reset_index(drop=True)
            idx = ev.base[split]["index"].to_numpy()
            ev.prob.setdefault(row, {})[split] = _aligned(frame, "prob", idx)
            ev.twin.setdefault(row, {})[split] = _aligned(frame, "prob_twin", idx)
        metrics = json.loads((run / "metrics.json").read_text()).get("test_b", {})
        ev.threshold[row] = float(metrics.get("threshold", 0.5))
        if scores is not None:
            _add_energy(ev, row, scores[scores["model"] == run.name])
        reason = run_learning_failure(run, predictions=frames)
        if reason:
            evidence.not_learned[run.name] = reason
    return evidence


def _failing_maps(summary: Path) -> set[str]:
    """The audited runs whose method failed the sanity check (the audit's ``sanity_pass``); none for an audit
    made before the check existed."""
    if not summary.is_file():
        return set()
    table = pd.read_csv(summary)
    if "sanity_pass" not in table:
        return set()
    failed = table[(table["group"] == "all") & (table["sanity_pass"].astype(str).str.lower() == "false")]
    return set(failed["model"].astype(str))


def _add_energy(ev: SeedEvidence, row: str, scores: pd.DataFrame) -> None:
    if not len(scores):
        return
    if ev.base_energy is None:
        first = scores.drop_duplicates("index").sort_values("index")
        ev.base_energy = first[["index", "patient_id"]].reset_index(drop=True)
    scores = scores.drop_duplicates("index")
    if "mask_x_chance" not in scores:  # an audit made before the ratios were written
        scores = scores.assign(mask_x_chance=scores["energy_in_mask"] / scores["mask_area"])
    for statistic, column in ENERGY_OF.items():
        ev.energy.setdefault(statistic, {})[row] = _aligned(scores, column, ev.base_energy["index"].to_numpy())


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _auc(ev: SeedEvidence, row: str, split: str, idx: dict[str, np.ndarray]) -> float:
    if split not in idx or split not in ev.prob[row]:
        return float("nan")
    return fast_auc(ev.column(split, "label")[idx[split]], ev.prob[row][split][idx[split]])


def _statistic(ev: SeedEvidence, row: str, name: str, idx: dict[str, np.ndarray]) -> float:
    """``name`` of ``row`` on one seed's rows ``idx[split]`` of each test set (``energy``: the audit's rows)."""
    if name in AUC_OF:
        return _auc(ev, row, AUC_OF[name], idx)
    if name == "drop":
        return _auc(ev, row, "test_a", idx) - _auc(ev, row, "test_b", idx)
    if name in ENERGY_OF:
        values = ev.energy.get(name, {}).get(row)
        return _mean(values[idx["energy"]]) if values is not None and "energy" in idx else float("nan")
    ib = idx["test_b"]
    pb = ev.prob[row]["test_b"][ib]
    if name == "worst_group_b":
        if "cue" not in ev.base["test_b"]:
            return float("nan")
        yb, cue = ev.column("test_b", "label")[ib], ev.column("test_b", "cue")[ib]
        return group_accuracy(yb, (pb >= ev.threshold.get(row, 0.5)).astype(int), cue)["worst_group_acc"]
    if name == "cue_b":
        return _mean(np.abs(pb - ev.twin[row]["test_b"][ib]))
    raise ValueError(f"unknown statistic {name!r}; choose one of {STATISTICS}")


Draw = dict[str, np.ndarray]  # test set (or "energy": the audit's slices) -> row indices


def _draws(ev: SeedEvidence, n_resamples: int, seed: int) -> list[Draw]:
    """``n_resamples`` patient resamples of every test set of one seed (each test set its own draw)."""
    sets = {split: frame["patient_id"].to_numpy() for split, frame in sorted(ev.base.items())}
    if ev.base_energy is not None:
        sets["energy"] = ev.base_energy["patient_id"].to_numpy()
    drawn = {name: resample_indices(len(groups), groups, n_resamples, seed + i)
             for i, (name, groups) in enumerate(sets.items())}  # fmt: skip
    return [{name: drawn[name][b] for name in drawn} for b in range(n_resamples)]


def _full(ev: SeedEvidence) -> Draw:
    full = {split: np.arange(len(frame)) for split, frame in ev.base.items()}
    if ev.base_energy is not None:
        full["energy"] = np.arange(len(ev.base_energy))
    return full


class _Scores:
    """Each (row, statistic, seed) on the full test sets and on every patient resample, computed once.

    Seeds scored on the same slices share their resamples (paired); seeds with test sets of their own
    (one phantom draw per seed) are resampled independently, each from its own patients.
    """

    def __init__(self, ev: Evidence, n_resamples: int, seed: int) -> None:
        self.ev, self.cache = ev, {}
        by_print: dict[tuple, list[Draw]] = {}
        self.draws = {}
        for k, seed_ev in sorted(ev.seeds.items()):
            key = seed_ev.fingerprint()
            if key not in by_print:
                by_print[key] = _draws(seed_ev, n_resamples, seed + 10 * len(by_print))
            self.draws[k] = by_print[key]

    def full(self, row: str, stat: str, k: int) -> float:
        ev = self.ev.seeds[k]
        return _statistic(ev, row, stat, _full(ev))

    def resampled(self, row: str, stat: str, k: int) -> np.ndarray:
        if (row, stat, k) not in self.cache:
            ev = self.ev.seeds[k]
            self.cache[(row, stat, k)] = np.array([_statistic(ev, row, stat, d) for d in self.draws[k]])
        return self.cache[(row, stat, k)]


# statistic -> its value from the paper's (AUC A, AUC B) of a row
_FROM_PAPER_AUC = {"auc_a": lambda a, b: a, "auc_b": lambda a, b: b, "drop": lambda a, b: a - b}


def _paper_difference(claim: Claim) -> float:
    """The paper's own value of an AUC claim (Table 1), NaN for statistics it did not report."""
    value = _FROM_PAPER_AUC.get(claim.statistic)
    rows = [claim.row] + ([claim.reference] if claim.reference else [])
    if value is None or any(r not in PAPER_AUC for r in rows):
        return float("nan")
    return value(*PAPER_AUC[claim.row]) - (value(*PAPER_AUC[claim.reference]) if claim.reference else 0.0)


def _patient_df(ev: Evidence, seeds: list[int], statistic: str) -> tuple[float | None, int]:
    """The patient term's degrees of freedom for the Welch-Satterthwaite df (:func:`mtlswin.stats.seed_interval`):
    per test set of the statistic, patients minus one summed over the distinct test sets of ``seeds`` (seeds on
    one shared test set count it once); the smallest over the statistic's test sets (``drop`` has two: the
    conservative choice). Also the number of distinct test sets. None when a test set has fewer than 2 patients."""
    distinct = {ev.seeds[k].fingerprint(): ev.seeds[k] for k in seeds}
    dfs = []
    for split in SETS_OF.get(statistic, ()):
        frames = [s.base_energy if split == "energy" else s.base.get(split) for s in distinct.values()]
        counts = [frame["patient_id"].nunique() for frame in frames if frame is not None]
        if not counts or min(counts) < 2:
            return None, len(distinct)
        dfs.append(float(sum(n - 1 for n in counts)))
    return (min(dfs) if dfs else None), len(distinct)


def evaluate_claims(
    ev: Evidence, claims: tuple[Claim, ...] = CLAIMS, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """One row per claim whose rows are present (:mod:`mtlswin.stats` for the interval): the estimate,
    the seed-aware interval and verdict, its t, degrees of freedom (Welch-Satterthwaite over the seed and
    patient terms), p-value and patient variance, the number of distinct test sets, the claim's role, the
    per-seed differences (``seed<k>`` columns), the patient-only interval for comparison, the minimum
    detectable effect, the paper's value, and the runs that did not learn.
    """
    scores = _Scores(ev, n_resamples, seed)
    all_seeds = sorted(ev.seeds)
    out = []
    for claim in claims:
        rows = [claim.row] + ([claim.reference] if claim.reference else [])
        seeds = [k for k in all_seeds if all(r in ev.seeds[k].prob for r in rows)]
        if not seeds:
            continue

        def diff(k: int, how: str, c: Claim = claim) -> float | np.ndarray:
            get = scores.full if how == "full" else scores.resampled
            return get(c.row, c.statistic, k) - (get(c.reference, c.statistic, k) if c.reference else 0.0)

        per_seed = np.array([diff(k, "full") for k in seeds])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample where a statistic is undefined
            patient_means = np.nanmean(np.stack([diff(k, "resampled") for k in seeds]), axis=0)
        patient_df, test_sets = _patient_df(ev, seeds, claim.statistic)
        interval = seed_interval(per_seed, patient_means, level, patient_df)
        p_low, p_high = percentile_interval(patient_means, level)
        flagged = [f"{r}-seed{k}" for k in seeds for r in rows if f"{r}-seed{k}" in ev.not_learned]
        # a map that fails its sanity check is not evidence: a claim about where the evidence lies rests on none
        no_map = [f"{r}-seed{k}" for k in seeds for r in rows if f"{r}-seed{k}" in ev.maps_fail_sanity] \
            if claim.statistic in ENERGY_OF else []  # fmt: skip
        paper = _paper_difference(claim)
        out.append({
            "claim": claim.text, "statistic": claim.statistic, "row": claim.row, "reference": claim.reference or "",
            "expected": "> 0" if claim.sign > 0 else "< 0", "estimate": interval.estimate, "low": interval.low,
            "high": interval.high, "half_width": interval.half_width, "se": interval.se, "seeds": interval.seeds,
            "verdict": "inconclusive (map fails its sanity check)" if no_map else verdict(interval.low, interval.high, claim.sign, interval.seeds),
            "df": interval.df, "t": interval.t, "p": interval.p, "patient_var": interval.patient_var,
            "patient_df": patient_df if patient_df is not None else float("nan"), "test_sets": test_sets,
            "role": claim.role, "sign": claim.sign,
            **{f"seed{k}": float(v) for k, v in zip(seeds, per_seed)},
            "patient_low": p_low, "patient_high": p_high, "mde": interval.mde, "paper": paper,
            "paper_detectable": bool(abs(paper) >= interval.mde) if np.isfinite(paper * interval.mde) else None,
            "not_learned": ";".join(flagged), "n_not_learned": len(flagged), "maps_fail_sanity": ";".join(no_map),
        })  # fmt: skip
    # No claim with its rows in the folder (rows swin_unet,joint_swin, say): a table with its columns and no line,
    # so that every reader of claims.csv (report, plan, sequential) reads "no claim" instead of failing on it.
    return pd.DataFrame(out, columns=None if out else CLAIM_COLUMNS)


def verdict(low: float, high: float, sign: int, seeds: int | None = None) -> str:
    """``held`` / ``did not hold`` / ``inconclusive`` from where the interval lies relative to zero."""
    if seeds is not None and seeds < 2:
        return "inconclusive (one seed: no interval over seeds)"
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive (no interval)"
    if low > 0 or high < 0:
        return "held" if (low > 0) == (sign > 0) else "did not hold"
    return "inconclusive"
