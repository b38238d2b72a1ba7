"""Stages of ``reproduce``: each runs only when its output is not there and valid, and prints one line.

:class:`Progress` runs a stage given its check and its action; the checks and actions of the experiment-wide
stages (the attribution audit, the claims) are here too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mtlswin.explain.collect import audit_runs
from mtlswin.explain.defaults import AUDIT_STAGE
from mtlswin.io import atomic_path, atomic_write_text
from mtlswin.pipeline.claim_families import adjusted_verdicts
from mtlswin.pipeline.claims import CLAIMS, Claim, evaluate_claims, load_evidence
from mtlswin.pipeline.claims_table import claims_markdown
from mtlswin.pipeline.run_state import stored_digest

__all__ = ["AUDIT_SPLIT", "AUDIT_STAGE", "CLAIM_RESAMPLES", "Progress", "audit", "audit_ok", "claims", "claims_ok",
           "time_table"]  # fmt: skip

AUDIT_SPLIT = "test_a"
CLAIM_RESAMPLES = 1000


@dataclass
class Progress:
    """Prints one line per stage: ``[k] stage ... done in 12.3 s`` or ``... skipped (valid output exists)``."""

    log: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)  # stages whose output was already there (timed 0.0)

    def stage(self, name: str, done: Callable[[], bool], action: Callable[[], object]) -> None:
        k = len(self.timings) + 1
        if done():
            self.log(f"[{k}] {name}: skipped (valid output exists)")
            self.timings[name] = 0.0
            self.skipped.add(name)
            return
        self.log(f"[{k}] {name}: running")
        start = time.perf_counter()
        action()
        self.timings[name] = time.perf_counter() - start
        if not done():
            raise RuntimeError(f"stage {name!r} finished but its output is not valid; see the messages above")
        self.log(f"[{k}] {name}: done in {self.timings[name]:.1f} s")


def time_table(timings: Mapping[str, float], skipped: Collection[str] = ()) -> str:
    """The reports' "Time per stage" section (Markdown): seconds per stage and the total. A stage this run found
    done (``skipped``) reads "skipped (its output existed)" rather than a time of 0.0 s it did not take."""
    rows = [f"| {k} | {'skipped (its output existed)' if k in skipped else f'{v:.1f}'} |" for k, v in timings.items()]
    total = f"| total | {sum(timings.values()):.1f} |"
    return "\n".join(["## Time per stage", "", "| stage | seconds |", "|---|---|", *rows, total]) + "\n"


def _audited_runs(runs: list[Path]) -> list[dict[str, str | None]]:
    """What runs.json records: each audited run folder and its config digest (a retrained run is re-audited)."""
    return [{"run": str(r), "config_sha256": stored_digest(r)} for r in runs]


def audit_ok(folder: Path, runs: list[Path]) -> bool:
    """The audit in ``folder`` is complete and was made of ``runs`` as they are now."""
    listed = folder / "runs.json"
    try:
        same = listed.is_file() and json.loads(listed.read_text()) == _audited_runs(runs)
    except ValueError:
        return False
    return same and (folder / "audit.csv").is_file() and (folder / "gradcam_grid.png").is_file()


def audit(folder: Path, runs: list[Path], grid_runs: int | None = None) -> None:
    """The attribution audit of ``runs`` on :data:`AUDIT_SPLIT` into ``folder`` (the grid shows ``grid_runs`` runs):
    each run's family's method, CAM methods at the finest Swin stage (:mod:`mtlswin.explain.defaults`)."""
    (folder / "runs.json").unlink(missing_ok=True)  # the audit files are replaced one by one: not done until the end
    audit_runs(runs, AUDIT_SPLIT, folder, grid_runs=grid_runs)
    atomic_write_text(folder / "runs.json", json.dumps(_audited_runs(runs)))


def claims_ok(out: Path, runs: list[Path]) -> bool:
    """claims.csv exists and is newer than every run's metrics.json and the audit it summarises."""
    path = out / "claims.csv"
    inputs = [r / "metrics.json" for r in runs] + [out / "audit" / "audit_slices.csv"]
    return path.is_file() and all(path.stat().st_mtime >= p.stat().st_mtime for p in inputs if p.is_file())


def claims(out: Path, runs: list[Path], audit_folder: Path, tested: tuple[Claim, ...] = CLAIMS) -> None:
    """``out/claims.md`` and ``out/claims.csv``: the ``tested`` claims over ``runs`` and the audit's slices, with
    the primary claims' verdicts adjusted by Holm (:mod:`mtlswin.pipeline.claim_families`)."""
    table = adjusted_verdicts(evaluate_claims(load_evidence(runs, audit_folder / "audit_slices.csv"), tested,
                                              n_resamples=CLAIM_RESAMPLES))  # fmt: skip
    atomic_write_text(out / "claims.md", claims_markdown(table, CLAIM_RESAMPLES))
    with atomic_path(out / "claims.csv") as tmp:  # last: its presence marks the stage done
        table.to_csv(tmp, index=False)
