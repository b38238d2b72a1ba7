"""Train / val / test splits: the paper's protocol and a patient-grouped one.

Paper protocol (SPEC "Data"), every number a parameter:

- ``test_a``: a random ``test_a_fraction`` (10%) of the slices of ``test_a_hospital`` (1);
- ``train`` / ``val``: the remaining slices of ``trainval_hospitals`` (1-4), split
  ``1 - val_fraction`` / ``val_fraction`` (80/20) at random;
- ``test_b``: ``test_b_size`` (default: the size of test A) slices drawn from
  ``test_b_hospitals`` (5-11) with the same positive rate as test A (``round(rate * size)``
  positives); ``"all"``: every slice of those hospitals (a departure from the paper, for power);
- ``test_trap`` (only when the manifest has trap hospitals, the phantom's 12, ...): every slice of
  ``trap_hospitals``, the cue anti-correlated with the label (Bissoto et al.'s trap test set). It is
  drawn last and uses no random number, so the other four splits are the same with or without it.

Patient protocol: the same, but test A and val are drawn as whole patients (so no patient is in two
splits; val through scikit-learn's ``GroupShuffleSplit``), and test B excludes any patient of the
other splits. Splits are a table ``index`` (0-based manifest data row) -> ``split``; rows not used
are absent. :func:`check_splits` refuses a split where a test-B patient is also in train or val.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mtlswin.io import atomic_path

SPLITS = ("train", "val", "test_a", "test_b", "test_trap")
TRAP_SPLIT = "test_trap"
FIRST_TRAP_HOSPITAL = 12  # = mtlswin.data.phantom.hospitals.FIRST_TRAP_HOSPITAL (imported data use hospital 1)
PROTOCOLS = ("paper", "patient")


def _take_patients(rows: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.Index:
    """Whole patients, in random order, until at least ``n`` slices are taken."""
    patients = rng.permutation(np.asarray(rows["patient_id"].unique(), dtype=object))
    taken, count = [], 0
    sizes = rows.groupby("patient_id").size()
    for p in patients:
        if count >= n:
            break
        taken.append(p)
        count += int(sizes[p])
    return rows.index[rows["patient_id"].isin(taken)]


def _train_val(rows: pd.DataFrame, val_fraction: float, grouped: bool, seed: int, rng) -> tuple[pd.Index, pd.Index]:
    if grouped:
        from sklearn.model_selection import GroupShuffleSplit

        gss = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        tr, va = next(gss.split(rows, groups=rows["patient_id"]))
        return rows.index[tr], rows.index[va]
    order = rng.permutation(rows.index.to_numpy())
    n_val = round(val_fraction * len(order))
    return pd.Index(order[n_val:]), pd.Index(order[:n_val])


def _test_b(pool: pd.DataFrame, target: str, size: int | str, rate: float, rng) -> pd.Index:
    if size == "all":
        return pool.index.sort_values()
    n_pos = round(rate * size)
    pos = pool.index[pool[target] == 1].to_numpy()
    neg = pool.index[pool[target] == 0].to_numpy()
    if n_pos > len(pos) or size - n_pos > len(neg):
        raise ValueError(
            f"test B needs {n_pos} positive and {size - n_pos} negative slices (size {size}, positive rate "
            f"{rate:.3f}) but its hospitals hold {len(pos)} positive and {len(neg)} negative; "
            "lower test_b_size or add hospitals to test_b_hospitals"
        )
    chosen = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, size - n_pos, replace=False)])
    return pd.Index(np.sort(chosen))


def _check_args(test_a_fraction: float, val_fraction: float, test_b_size: int | str | None = None) -> None:
    if isinstance(test_b_size, str) and test_b_size != "all":
        raise ValueError(f"test_b_size must be a number of slices or 'all', got {test_b_size!r}")
    if not 0 < test_a_fraction < 1:
        raise ValueError(f"test_a_fraction must be in (0, 1), got {test_a_fraction}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


def make_splits(
    table: pd.DataFrame,
    target: str = "hypodensity",
    protocol: str = "paper",
    *,
    test_a_hospital: int = 1,
    test_a_fraction: float = 0.1,
    test_a_size: int | None = None,
    trainval_hospitals: Sequence[int] = (1, 2, 3, 4),
    val_fraction: float = 0.2,
    test_b_hospitals: Sequence[int] = tuple(range(5, 12)),
    test_b_size: int | str | None = None,
    trap_hospitals: Sequence[int] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Split the rows of a manifest table (``Manifest.table``; index = manifest data row).

    ``test_b_size="all"`` takes every slice of the test-B hospitals (at their own positive rate) instead of
    a sample matched to test A's size and rate: more positives and patients for the statistics, at the
    price of a departure from the paper's protocol that a report must state.

    ``trap_hospitals`` (default: every hospital numbered 12 or more in ``table``, the phantom's trap
    hospitals) make ``test_trap``, all of their slices; no such hospital, no ``test_trap`` rows.

    Returns a DataFrame with columns ``index`` and ``split``, sorted by index.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    _check_args(test_a_fraction, val_fraction, test_b_size)
    grouped = protocol == "patient"
    rng = np.random.default_rng(seed)
    hosp_a = table[table["hospital"] == test_a_hospital]
    if hosp_a.empty:
        raise ValueError(
            f"test_a_hospital {test_a_hospital} has no slices; hospitals: {sorted(table.hospital.unique())}"
        )
    n_a = test_a_size if test_a_size is not None else max(1, round(test_a_fraction * len(hosp_a)))
    if grouped:
        idx_a = _take_patients(hosp_a, n_a, rng)
    else:
        idx_a = pd.Index(np.sort(rng.choice(hosp_a.index.to_numpy(), min(n_a, len(hosp_a)), replace=False)))
    rest = table[table["hospital"].isin(list(trainval_hospitals)) & ~table.index.isin(idx_a)]
    if grouped:
        rest = rest[~rest["patient_id"].isin(table.loc[idx_a, "patient_id"])]
    idx_tr, idx_va = _train_val(rest, val_fraction, grouped, seed, rng)
    pool = table[table["hospital"].isin(list(test_b_hospitals)) & ~table.index.isin(idx_a.union(rest.index))]
    if grouped:
        used = table.loc[idx_a.union(rest.index), "patient_id"]
        pool = pool[~pool["patient_id"].isin(used)]
    rate = float(table.loc[idx_a, target].mean())
    idx_b = _test_b(pool, target, test_b_size if test_b_size is not None else len(idx_a), rate, rng)
    if trap_hospitals is None:
        trap_hospitals = sorted(int(h) for h in table["hospital"].unique() if h >= FIRST_TRAP_HOSPITAL)
    taken = idx_a.union(rest.index).union(idx_b)
    idx_trap = table.index[table["hospital"].isin(list(trap_hospitals)) & ~table.index.isin(taken)]
    if grouped:
        idx_trap = idx_trap[~table.loc[idx_trap, "patient_id"].isin(table.loc[taken, "patient_id"]).to_numpy()]
    indices = (idx_tr, idx_va, idx_a, idx_b, idx_trap)
    parts = [
        pd.DataFrame({"index": idx, "split": name})
        for idx, name in zip(indices, SPLITS)
        if len(idx) or name != TRAP_SPLIT
    ]
    return pd.concat(parts).sort_values("index").reset_index(drop=True).astype({"index": np.int64})


def write_splits(splits: pd.DataFrame, path: str | Path) -> Path:
    """Write the splits CSV (``index``, ``split``) atomically (temp file + ``os.replace``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        splits[["index", "split"]].to_csv(tmp, index=False)
    return path


def read_splits(path: str | Path, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a splits CSV; with ``table`` (a manifest table) also check that every index exists.

    Raises ValueError naming the file and the bad rows.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"splits file not found: {path}; make one with `mtlswin split MANIFEST --out {path.name}`")
    df = pd.read_csv(path)
    missing_cols = [c for c in ("index", "split") if c not in df.columns]
    if missing_cols:
        raise ValueError(
            f"{path}: no column {missing_cols[0]!r}; a splits CSV needs columns 'index' and 'split', "
            f"found {list(df.columns)}"
        )
    bad = df[~df["split"].isin(SPLITS)]
    if len(bad):
        raise ValueError(f"{path}: unknown split name(s) {sorted(bad['split'].unique())} (allowed: {SPLITS})")
    dup = df[df["index"].duplicated()]
    if len(dup):
        raise ValueError(f"{path}: manifest rows listed twice: {dup['index'].tolist()[:10]}")
    if table is not None:
        missing = sorted(set(df["index"]) - set(table.index))
        if missing:
            raise ValueError(
                f"{path}: indices not in the manifest (or skipped as bad rows): {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}; remake the splits for this manifest"
            )
    return df[["index", "split"]].astype({"index": np.int64})


def check_splits(table: pd.DataFrame, splits: pd.DataFrame) -> None:
    """Refuse a split whose test-B (or test-trap) patients also appear in train or val (ValueError naming them)."""
    patients = table["patient_id"]
    by = {name: set(patients.loc[splits.loc[splits["split"] == name, "index"]]) for name in SPLITS}
    for other in ("train", "val"):
        shared = sorted(by["test_b"] & by[other])
        if shared:
            raise ValueError(
                f"{len(shared)} patient(s) of test_b also in {other}: {shared[:10]}; test B must be a covariate-shift "
                "test with unseen patients: remake the splits (e.g. `mtlswin split --protocol paper`)"
            )
        shared = sorted(by[TRAP_SPLIT] & by[other])
        if shared:
            raise ValueError(
                f"{len(shared)} patient(s) of test_trap also in {other}: {shared[:10]}; the trap test set must hold "
                "unseen patients: remake the splits (e.g. `mtlswin split --protocol paper`)"
            )


def split_table(table: pd.DataFrame, splits: pd.DataFrame, target: str) -> str:
    """A printable table: per split, slices, positives, positive rate, patients, hospitals (``test_trap`` only
    when the splits have it)."""
    rows = []
    for name in SPLITS:
        idx = splits.loc[splits["split"] == name, "index"]
        if name == TRAP_SPLIT and not len(idx):
            continue
        part = table.loc[idx]
        n, pos = len(part), int(part[target].sum()) if len(part) else 0
        hospitals = ",".join(str(h) for h in sorted(part["hospital"].unique()))
        rate = pos / n if n else float("nan")
        rows.append(f"{name:<7} {n:>7} {pos:>9} {rate:>7.3f} {part['patient_id'].nunique():>8}  {hospitals}")
    header = f"{'split':<7} {'slices':>7} {'positive':>9} {'rate':>7} {'patients':>8}  hospitals"
    return "\n".join([header, *rows])


MIN_TEST_POSITIVES = 10


def split_warnings(
    table: pd.DataFrame, splits: pd.DataFrame, target: str, min_positives: int = MIN_TEST_POSITIVES
) -> list[str]:
    """Warnings about test sets too small to measure: fewer than ``min_positives`` positives (or negatives).

    With a handful of positives the accuracy is dominated by the negatives and the AUC has a huge
    variance (or, with none, is undefined): make a larger data set or larger test fractions.
    """
    out = []
    for name in ("test_a", "test_b", TRAP_SPLIT):
        idx = splits.loc[splits["split"] == name, "index"]
        if not len(idx):
            continue
        n, pos = len(idx), int(table.loc[idx, target].sum())
        if pos < min_positives:
            out.append(
                f"warning: {name} has {pos} positive slice(s) of {n} (fewer than {min_positives}): its AUC and F1 "
                "are unreliable"
                + (" (AUC undefined)" if pos == 0 else "")
                + "; use more data or a larger test fraction"
            )
        elif n - pos == 0:
            out.append(f"warning: {name} has no negative slice ({n} positives): its AUC is undefined")
    return out
