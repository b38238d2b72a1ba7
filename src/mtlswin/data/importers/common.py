"""What every importer shares: the result record and the manifest writer."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from mtlswin.io import atomic_path


@dataclasses.dataclass
class ImportResult:
    """``manifest``: the CSV written; ``rows``: slices in it; ``splits``: a splits CSV if the
    source defines one; ``skipped``: human-readable notes on what was left out (with paths)."""

    manifest: Path
    rows: int
    splits: Path | None = None
    skipped: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [f"wrote {self.manifest} ({self.rows} slices)"]
        if self.splits:
            lines.append(f"wrote {self.splits}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  - {s}" for s in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


def rel(path: str | Path, out_dir: Path) -> str:
    """``path`` relative to the manifest's folder (POSIX separators), so the pair can move together."""
    return Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix()


def write_manifest(records: list[dict], out_dir: str | Path, markers: list[str], extra: list[str] = ()) -> Path:
    """Write ``out_dir/manifest.csv`` with the standard columns, then ``markers``, then ``extra``."""
    if not records:
        raise ValueError(f"no slices found to import into {out_dir}; check the source folder layout")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ["image", "mask", "patient_id", "hospital", *markers, *extra]
    path = out_dir / "manifest.csv"

    with atomic_path(path) as tmp:
        pd.DataFrame(records).reindex(columns=columns).fillna({"mask": ""}).to_csv(tmp, index=False)
    return path


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else a ValueError naming it and the expected layout."""
    if not path.exists():
        raise ValueError(f"{path} not found: expected {what}")
    return path
