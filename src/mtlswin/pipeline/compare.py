"""Several finished reproduce folders side by side: each claim's estimate, interval and verdict in every folder,
and the settings in which their rows differ (read from the runs' own ``config.yaml``, so nothing is taken on
trust from a report). Written for the fair race (docs/tuning.md): the methods preset at its a-priori settings
beside the same preset at the settings each selection rule chose; any folders of one preset compare the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mtlswin.io import atomic_write_text
from mtlswin.pipeline.claims import SEED_SUFFIX, seed_of
from mtlswin.pipeline.claims_table import signed
from mtlswin.runs import relative_to_run

__all__ = ["NOT_SET", "NOT_TRAINED", "compare_claims", "compare_markdown", "setting_differences", "write_comparison"]

CLAIM_KEY = ["claim", "statistic", "row", "reference"]


def _claims(folder: Path) -> pd.DataFrame:
    path = folder / "claims.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {folder} is not a finished reproduce folder")
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in [*CLAIM_KEY, "estimate", "low", "high", "verdict"] if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; is it a claims table of mtlswin reproduce?")
    table["reference"] = table["reference"].fillna("")
    return table


def _final_verdict(record: pd.Series) -> str:
    """The verdict the report leads with: Holm-adjusted for a primary claim and the control, the claim's own
    for a secondary one (and for a table written before claims had roles)."""
    adjusted = record.get("verdict_adjusted")
    if record.get("role") in ("primary", "control") and isinstance(adjusted, str) and adjusted:
        return adjusted
    return str(record["verdict"])


def compare_claims(folders: Mapping[str, str | Path]) -> pd.DataFrame:
    """One line per claim (outer join over the folders): for each folder label ``L``, ``L_estimate``,
    ``L_low``, ``L_high``, ``L_verdict`` (the one the report leads with) and ``L_not_learned``; ``role`` from
    the first folder that has the claim; ``changed``: whether the verdict is not the same in every folder
    (a claim missing from a folder counts as changed)."""
    if len(folders) < 2:
        raise ValueError("compare needs at least two folders")
    merged: pd.DataFrame | None = None
    for label, folder in folders.items():
        table = _claims(Path(folder))
        part = table[CLAIM_KEY].copy()
        part[f"{label}_role"] = table.get("role", pd.Series("", index=table.index)).fillna("")
        for column in ("estimate", "low", "high"):
            part[f"{label}_{column}"] = table[column].astype(float)
        part[f"{label}_verdict"] = table.apply(_final_verdict, axis=1)
        part[f"{label}_not_learned"] = table.get("n_not_learned", pd.Series(0, index=table.index)).fillna(0)
        merged = part if merged is None else merged.merge(part, on=CLAIM_KEY, how="outer", sort=False)
    assert merged is not None
    labels = list(folders)
    roles = merged[[f"{label}_role" for label in labels]].replace("", np.nan)
    merged.insert(len(CLAIM_KEY), "role", roles.bfill(axis=1).iloc[:, 0].fillna(""))
    merged = merged.drop(columns=[f"{label}_role" for label in labels])
    verdicts = merged[[f"{label}_verdict" for label in labels]]
    merged["changed"] = verdicts.isna().any(axis=1) | (verdicts.nunique(axis=1, dropna=True) > 1)
    return merged.reset_index(drop=True)


NOT_SET = "(not set: its default)"
NOT_TRAINED = "(not trained)"


def _flat(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    # A null leaves the setting at its default, as a key left out does: both read NOT_SET.
    return {} if tree is None else {prefix.rstrip("."): tree}


def _row_configs(folder: Path) -> dict[str, dict[str, object]]:
    """Each row's settings, from its lowest seed's ``runs/<row>-seed<k>/config.yaml``, flattened to dotted keys,
    with its paths relative to the run folder, so that two folders compare equal there."""
    seeds: dict[str, tuple[int, Path]] = {}
    for run in sorted((folder / "runs").glob(f"*{SEED_SUFFIX}*")):
        row, seed = run.name.rsplit(SEED_SUFFIX, 1)[0], seed_of(run)
        if (run / "config.yaml").is_file() and (row not in seeds or seed < seeds[row][0]):
            seeds[row] = (seed, run / "config.yaml")
    # paths relative to the run folder, as the config digest takes them: a run copied from another folder keeps
    # the absolute paths of where it trained, and compares equal to it
    return {row: _flat(relative_to_run(yaml.safe_load(path.read_text()) or {})) for row, (_, path) in seeds.items()}


def setting_differences(folders: Mapping[str, str | Path]) -> pd.DataFrame:
    """Columns ``row``, ``key`` and one per folder label: every setting of a row that is not the same in all
    folders. A row a folder did not train shows ``NOT_TRAINED`` there; a key its config lacks (a section left
    at its default, such as ``loss_weights: null`` beside written-out weights) shows ``NOT_SET``. Seeds and
    data draws are the same by construction when the folders ran one preset with one ``--phantom-seed``."""
    configs = {label: _row_configs(Path(folder)) for label, folder in folders.items()}
    rows = sorted(set().union(*(c.keys() for c in configs.values())))
    lines = []
    for row in rows:
        keys = sorted(set().union(*(c.get(row, {}).keys() for c in configs.values())))
        for key in keys:
            values = [c[row].get(key, NOT_SET) if row in c else NOT_TRAINED for c in configs.values()]
            if any(repr(v) != repr(values[0]) for v in values[1:]):
                lines.append({"row": row, "key": key, **dict(zip(folders, values, strict=True))})
    return pd.DataFrame(lines, columns=["row", "key", *folders])


def _cell(record: pd.Series, label: str) -> str:
    verdict = record[f"{label}_verdict"]
    if not isinstance(verdict, str):
        return "(no such claim)"
    interval = f"[{signed(record[f'{label}_low'])}, {signed(record[f'{label}_high'])}]"
    not_learned = int(record[f"{label}_not_learned"] or 0)
    flag = f", {not_learned} run(s) did not learn" if not_learned else ""
    return f"{signed(record[f'{label}_estimate'])} {interval} {verdict}{flag}"


def compare_markdown(claims: pd.DataFrame, settings: pd.DataFrame, folders: Mapping[str, str | Path]) -> str:
    labels = list(folders)
    lines = ["# Reproduce folders compared", ""]
    lines += [f"- **{label}**: `{folder}`" for label, folder in folders.items()]
    lines += ["", "## Settings in which the rows differ (from each row's lowest seed's config.yaml)", ""]
    if settings.empty:
        lines.append("None: every row trained with the same settings in every folder.")
    else:
        lines += ["| row | setting | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
        for _, s in settings.iterrows():
            values = [s[label] if s[label] in (NOT_SET, NOT_TRAINED) else f"`{s[label]}`" for label in labels]
            lines.append(f"| {s['row']} | `{s['key']}` | " + " | ".join(values) + " |")
    lines += [
        "",
        "## Claims",
        "",
        "Each cell: estimate [95% interval] verdict, the verdict the report leads with (Holm-adjusted for the "
        "primary claims and the control, the claim's own for a secondary one). **changed**: the verdict is not "
        "the same in every folder.",
        "",
        "| claim | role | " + " | ".join(labels) + " | changed |",
        "|---|---|" + "---|" * len(labels) + "---|",
    ]
    order = {"control": 0, "primary": 1}
    ranked = claims.assign(_order=claims["role"].map(order).fillna(2)).sort_values("_order", kind="stable")
    for _, record in ranked.iterrows():
        cells = [_cell(record, label) for label in labels]
        changed = "**yes**" if record["changed"] else "no"
        lines.append(f"| {record['claim']} | {record['role'] or 'n/a'} | " + " | ".join(cells) + f" | {changed} |")
    n_changed = int(claims["changed"].sum())
    lines += ["", f"{n_changed} of {len(claims)} claims changed verdict.", ""]
    return "\n".join(lines)


def write_comparison(folders: Mapping[str, str | Path], out: str | Path) -> Path:
    """Write ``compare.csv`` (claims), ``compare_settings.csv`` and ``compare.md`` into ``out``; returns the
    Markdown's path."""
    for label in folders:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", label):
            raise ValueError(f"folder label {label!r}: use letters, digits, '_', '-' or '.'")
    claims = compare_claims(folders)
    settings = setting_differences(folders)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.csv", claims.to_csv(index=False))
    atomic_write_text(out / "compare_settings.csv", settings.to_csv(index=False))
    return atomic_write_text(out / "compare.md", compare_markdown(claims, settings, folders))
