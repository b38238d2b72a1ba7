"""The manifest: a CSV with one row per slice, read and validated up front.

Columns (docs/contracts.md): ``image`` (path relative to the manifest's folder; NIfTI slices as
``vol.nii.gz#k``), ``mask`` (path or empty; the column may be absent), ``patient_id`` (identifies
a patient across the whole manifest), ``hospital`` (integer), one 0/1 column per marker, optional
``cue`` (0/1 or empty), optional ``twin`` (path of the slice's counterfactual twin: the same slice with the
cue flipped, e.g. written by ``mtlswin synth --twins``; or empty). Every other column is a marker, except the metadata columns in
:data:`META_COLUMNS` and any column whose name starts with ``meta_``.

:func:`read_manifest` checks everything before training starts and reports ALL problems at once,
each with its 1-based data row number and path: missing required columns, missing files,
unreadable files, files holding values that are not finite numbers (NaN, Inf:
:func:`mtlswin.data.readers.check_values`), masks whose size differs from their image, labels that are not 0/1,
duplicate rows, empty target cells. With ``on_bad_row="skip"`` the bad rows are dropped and returned in
``Manifest.skipped`` (write them with :func:`write_skipped`); problems of the whole file (a missing
column) are always errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mtlswin.data.readers import NonFiniteError, check_values, image_shape, split_slice
from mtlswin.io import atomic_path

REQUIRED_COLUMNS = ("image", "patient_id", "hospital")
META_COLUMNS = (
    "image", "mask", "patient_id", "hospital", "cue", "twin", "source", "study_id", "series_id", "sop_uid",
)  # fmt: skip
_BINARY = ("0", "1", "0.0", "1.0")
PAPER_MARKERS = ("hypodensity", "irregular_margin", "blend_sign", "fluid_level")


class ManifestError(ValueError):
    """A manifest failed validation; ``problems`` lists every problem found, one string each."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:  # one line, as the CLI prints every single failure
            super().__init__(f"{path}: {self.problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s) in the manifest:\n{lines}")


@dataclasses.dataclass
class Manifest:
    """A validated manifest.

    ``table`` keeps the manifest's own 0-based data row numbers as its index (rows skipped by
    ``on_bad_row="skip"`` are absent); ``markers`` are the label columns in file order;
    ``skipped`` has columns ``row`` (1-based), ``index`` (0-based), ``image``, ``problem``.
    """

    path: Path
    table: pd.DataFrame
    markers: tuple[str, ...]
    target: str
    skipped: pd.DataFrame

    @property
    def root(self) -> Path:
        return self.path.parent

    def image_path(self, index: int) -> str:
        """Absolute image path (with any ``#k`` slice suffix) of manifest row ``index`` (0-based)."""
        return self.image_paths([index])[0]

    def mask_path(self, index: int) -> str | None:
        """Absolute mask path of row ``index``, or None when the row has no mask."""
        return self.mask_paths([index])[0]

    def image_paths(self, indices: Sequence[int] | None = None) -> list[str]:
        """The absolute image paths of the rows ``indices`` (default: the table's rows, in order), read from the
        column at once: a pandas lookup per row costs seconds for a large manifest."""
        return [resolve(self.root, value) for value in self._column("image", indices)]

    def mask_paths(self, indices: Sequence[int] | None = None) -> list[str | None]:
        """The absolute mask paths of the rows ``indices`` (default: the table's rows, in order), None for a row
        without a mask."""
        if "mask" not in self.table.columns:
            return [None] * (len(self.table) if indices is None else len(indices))
        return [resolve(self.root, value) if _present(value) else None for value in self._column("mask", indices)]

    def _column(self, column: str, indices: Sequence[int] | None) -> list:
        values = self.table[column]
        return (values if indices is None else values.loc[np.asarray(indices, dtype=np.int64)]).tolist()

    @property
    def has_cue(self) -> bool:
        return "cue" in self.table.columns

    def twin_rows(self, indices=None) -> list[int]:
        """Rows (of ``indices``, default all) whose ``twin`` cell names a file."""
        if "twin" not in self.table.columns:
            return []
        rows = self.table.index if indices is None else indices
        return [int(i) for i, value in zip(rows, self._column("twin", indices)) if _present(value)]

    def twins(self) -> Manifest:
        """The manifest of the counterfactual twins: rows with a twin, ``image`` = the twin, ``cue`` flipped.

        Same row index as this manifest, so splits, caches and predictions line up row by row.
        """
        table = self.table.loc[self.twin_rows()].copy()
        table["image"] = table.pop("twin")
        if "cue" in table.columns:
            table["cue"] = [1 - c if c in (0, 1) else c for c in table["cue"]]
        return dataclasses.replace(self, table=table)

    def __len__(self) -> int:
        return len(self.table)


def resolve(root: Path, value: str) -> str:
    """Manifest path -> absolute path string, keeping a ``#k`` slice suffix."""
    file, k = split_slice(str(value))
    full = file if file.is_absolute() else root / file
    return f"{full}#{k}" if k is not None else str(full)


def _present(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def marker_columns(columns) -> tuple[str, ...]:
    """Columns that are markers: all but the metadata columns and ``meta_*``."""
    return tuple(c for c in columns if c not in META_COLUMNS and not str(c).startswith("meta_"))


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ManifestError(path, [f"manifest file not found: {path}"])
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except Exception as err:
        raise ManifestError(path, [f"cannot parse CSV ({type(err).__name__}: {err})"]) from err


def _column_problems(df: pd.DataFrame, target: str) -> list[str]:
    problems = [f"missing required column {c!r}" for c in REQUIRED_COLUMNS if c not in df.columns]
    if target not in df.columns:
        markers = marker_columns(df.columns)
        problems.append(f"missing target column {target!r} (marker columns found: {list(markers)}); set data.target")
    elif (df[target].str.strip() == "").all():
        problems.append(f"target column {target!r} is empty in every row")
    return problems


def _row_problems(df: pd.DataFrame, root: Path, target: str, markers, check_files: bool) -> dict[int, list[str]]:
    """0-based row -> list of problems (without the row prefix)."""
    problems: dict[int, list[str]] = {}
    first_seen: dict[str, int] = {}
    for i, rec in enumerate(df.to_dict("records")):
        found: list[str] = []
        for col in markers:
            value = rec[col].strip()
            if value == "":
                found.append(f"empty target {col!r}" if col == target else f"empty label {col!r} (must be 0 or 1)")
            elif value not in _BINARY:
                found.append(f"label {col!r} = {value!r} is not 0/1")
        try:
            int(rec["hospital"])
        except ValueError:
            found.append(f"hospital {rec['hospital']!r} is not an integer")
        if rec.get("cue", "").strip() not in ("", *_BINARY):
            found.append(f"cue {rec['cue']!r} is not 0/1 or empty")
        key = rec["image"].strip()
        if key in first_seen:
            found.append(f"duplicate of row {first_seen[key] + 1} (same image)")
        else:
            first_seen[key] = i
        if check_files:
            found += _file_problems(root, rec)
        if found:
            problems[i] = found
    return problems


def _file_problems(root: Path, rec: dict) -> list[str]:
    found: list[str] = []
    if not _present(rec["image"]):
        return ["empty image path"]
    shapes = {}
    for col in ("image", "mask", "twin"):
        value = rec.get(col, "")
        if not _present(value):
            continue
        full = resolve(root, value.strip())
        if not split_slice(full)[0].is_file():
            found.append(f"{col} file not found: {full}")
            continue
        try:
            shapes[col] = image_shape(full)
            check_values(full)
        except NonFiniteError as err:
            found.append(f"{col} file: {err}")
        except ValueError as err:
            found.append(f"unreadable {col} file: {err}")
    for col in ("mask", "twin"):
        if col in shapes and "image" in shapes and shapes["image"] != shapes[col]:
            found.append(f"{col} size {shapes[col]} differs from image size {shapes['image']} ({col} {rec[col]})")
    return found


def read_manifest(
    path: str | Path,
    target: str = "hypodensity",
    on_bad_row: str = "error",
    check_files: bool = True,
) -> Manifest:
    """Read and validate a manifest CSV.

    Raises :class:`ManifestError` listing every problem (``row N (path): problem``) when the file
    has whole-file problems, or bad rows and ``on_bad_row="error"``. With ``"skip"`` bad rows are
    dropped and listed in ``Manifest.skipped``; an all-bad manifest is still an error.
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    path = Path(path)
    df = _read_csv(path)
    column_problems = _column_problems(df, target)
    if column_problems:
        raise ManifestError(path, column_problems)
    markers = marker_columns(df.columns)
    bad = _row_problems(df, path.parent, target, markers, check_files)
    messages = [f"row {i + 1} ({df.at[i, 'image']}): {p}" for i, probs in bad.items() for p in probs]
    if bad and (on_bad_row == "error" or len(bad) == len(df)):
        raise ManifestError(path, messages)
    skipped = pd.DataFrame(
        [(i + 1, i, df.at[i, "image"], "; ".join(p)) for i, p in bad.items()],
        columns=["row", "index", "image", "problem"],
    )
    table = _typed(df.drop(index=list(bad)), markers)
    return Manifest(path=path, table=table, markers=markers, target=target, skipped=skipped)


def _typed(df: pd.DataFrame, markers) -> pd.DataFrame:
    df = df.copy()
    df["hospital"] = df["hospital"].astype(int)
    for col in markers:
        df[col] = df[col].astype(float).astype(np.int64)
    if "cue" in df.columns:
        df["cue"] = [int(float(v)) if v.strip() else -1 for v in df["cue"]]
    df["patient_id"] = df["patient_id"].astype(str)
    return df


def write_skipped(manifest: Manifest, run_dir: str | Path) -> Path | None:
    """Write ``run_dir/skipped_rows.csv`` when rows were skipped; returns its path (or None)."""
    if manifest.skipped.empty:
        return None
    out = Path(run_dir) / "skipped_rows.csv"

    with atomic_path(out) as tmp:
        manifest.skipped.to_csv(tmp, index=False)
    return out
