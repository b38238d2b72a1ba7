"""``reproduce --until-decided``: train seeds in batches until every primary claim is decided (issue 37).

The loop drives :func:`mtlswin.pipeline.reproduce.reproduce` with a growing list of seeds (the first
``batch_seeds``, then ``2 * batch_seeds``, ... up to ``max_seeds``), for the rows of the preset's primary claims
(or the rows given). After each batch (a *look*) it reads the claims that ``reproduce`` wrote and tests the
primary ones with the group-sequential Holm procedure of :mod:`mtlswin.stats.sequential` (Lan-DeMets
O'Brien-Fleming spending over the information fraction seeds / ``max_seeds``, on the t scale; docs/verdicts.md
argues the choice). It stops when every primary claim is decided (*held* or *did not hold*), after the look at
``max_seeds`` (the undecided ones are then *inconclusive*), or when the next batch would overrun ``budget_hours``.
The positive control is tested with the same boundaries at full alpha, outside the family; it does not stop the
loop. The interim looks skip the attribution audit; the last call of ``reproduce`` does it and writes the report.

**Resuming.** The design (preset, rows, cap, batch, alpha, data) is written to ``OUT/sequential.json`` at the
first look and must be the same on a rerun (the boundaries depend on it; only the budget may change). Each look is
appended to ``OUT/sequential.csv`` (one line per claim) and ``OUT/sequential.md`` once its claims are read; a
killed run restarts at the first look not recorded, and ``reproduce`` skips (or resumes) the runs already there.
The time a killed look had spent is not counted against the budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from mtlswin.io import atomic_path, atomic_write_text
from mtlswin.pipeline.claim_families import decision
from mtlswin.pipeline.claims_table import signed
from mtlswin.pipeline.executors.choice import ExecutorChoice
from mtlswin.pipeline.presets import get_preset
from mtlswin.pipeline.reproduce import reproduce
from mtlswin.stats import look_levels, obf_boundaries, sequential_holm

__all__ = ["DECIDED", "Design", "family_rows", "run_from_args", "until_decided"]

DECIDED = ("held", "did not hold")
DESIGN_FILE, LOOKS_FILE, LOOKS_MD = "sequential.json", "sequential.csv", "sequential.md"


@dataclass(frozen=True)
class Design:
    """What the boundaries rest on, fixed at the first look: the preset, the rows trained, ``max_seeds`` (the
    information fraction's denominator), ``batch_seeds`` per look, the family-wise ``alpha``, and the data."""

    preset: str
    rows: tuple[str, ...]
    max_seeds: int = 24
    batch_seeds: int = 3
    alpha: float = 0.05
    phantom_seed: int = 0
    overrides: tuple[str, ...] = ()
    slices: int | None = None
    manifest: str | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.batch_seeds <= self.max_seeds:
            raise ValueError(f"--batch-seeds must be in 2..--max-seeds ({self.max_seeds}), got {self.batch_seeds}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def looks(self) -> list[int]:
        """The seeds at each look: ``batch_seeds``, twice that, ..., and ``max_seeds`` last."""
        sizes = list(range(self.batch_seeds, self.max_seeds, self.batch_seeds))
        return [*sizes, self.max_seeds]

    def fractions(self, look: int) -> list[float]:
        """The information fractions of looks 1..``look``."""
        return [n / self.max_seeds for n in self.looks()[:look]]

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def family_rows(preset_name: str, rows: Sequence[str] | None) -> tuple[str, ...]:
    """The rows to train: ``rows`` if given, else the rows of the preset's primary claims and its control; a
    ``ValueError`` when no primary claim has all its rows among them."""
    preset = get_preset(preset_name)
    if preset.axis is not None:
        raise ValueError(f"--until-decided takes a preset without an axis; {preset.name!r} varies {preset.axis.kind}")
    primary = [c for c in preset.claims if c.role == "primary"]
    if rows is None:
        chosen = [r for c in preset.claims if c.role in ("primary", "control") for r in (c.row, c.reference) if r]
        rows = [r for r in preset.rows if r in chosen] + [r for r in dict.fromkeys(chosen) if r not in preset.rows]
    if not any({c.row, c.reference or c.row} <= set(rows) for c in primary):
        named = ", ".join(f"{c.row} - {c.reference}" for c in primary) or "none"
        raise ValueError(f"no primary claim of preset {preset.name!r} has its rows among {list(rows)}; its primary "
                         f"claims: {named}")  # fmt: skip
    return tuple(rows)


def _read_looks(out: Path) -> pd.DataFrame:
    path = out / LOOKS_FILE
    return pd.read_csv(path, keep_default_na=False, na_values=[""]) if path.is_file() else pd.DataFrame()


def _check_design(out: Path, design: Design) -> None:
    path = out / DESIGN_FILE
    if not path.is_file():
        atomic_write_text(path, design.as_json())
        return
    stored = json.loads(path.read_text())
    now = json.loads(design.as_json())
    if stored != now:
        diff = {k: (stored.get(k), now.get(k)) for k in now if stored.get(k) != now.get(k)}
        raise ValueError(f"{out} holds a sequential run of another design (stored, now): {diff}. Its boundaries "
                         "rest on the design fixed at the first look: rerun with the same settings, or use another "
                         "--out")  # fmt: skip


def _key(record: dict) -> tuple[str, str, str]:
    reference = record.get("reference")
    return str(record["statistic"]), str(record["row"]), reference if isinstance(reference, str) else ""


def _test(records: list[dict], prior: dict, fractions: list[float], alpha: float) -> None:
    """Test ``records`` (one family) at this look, in place: decision, level, boundary and repeated interval."""
    if not records:
        return
    keys = [_key(r) for r in records]
    before = np.array([prior.get(k, ("", 0))[0] in DECIDED for k in keys])
    t_stats = np.array([r["t"] for r in records], dtype=float)
    dfs = np.array([r["df"] for r in records], dtype=float)
    rejected, level = sequential_holm(t_stats, dfs, fractions, alpha, before)
    for r, key, was, now, lvl in zip(records, keys, before, rejected, level):
        if was:
            r["decision"], r["decided_at"] = prior[key]
            continue
        z = float(obf_boundaries(fractions, lvl)[-1])
        nominal = look_levels(fractions, lvl)
        t_bound = float(student_t.isf(nominal / 2, r["df"])) if np.isfinite(r["df"]) else float("nan")
        r.update(alpha_local=lvl, z_boundary=z, nominal_p=nominal, t_boundary=t_bound,
                 rci_low=r["estimate"] - t_bound * r["se"], rci_high=r["estimate"] + t_bound * r["se"])  # fmt: skip
        r["decision"] = decision(bool(now), r["estimate"], int(r["sign"])) if now else "continue"
        r["decided_at"] = r["look"] if now else ""


def _look_records(claims: pd.DataFrame, look: int, seeds: int, design: Design, prior: dict) -> list[dict]:
    """The primary claims and the control at this look, tested (module docstring)."""
    fractions = design.fractions(look)
    base = {"look": look, "seeds_planned": seeds, "fraction": fractions[-1]}
    cols = ["claim", "role", "statistic", "row", "reference", "sign", "seeds", "estimate", "low", "high", "se",
            "df", "t", "p"]  # fmt: skip
    picked = claims[claims["role"].isin(["primary", "control"])]
    records = [{**base, **{c: r.get(c) for c in cols}} for r in picked.to_dict("records")]
    _test([r for r in records if r["role"] == "primary"], prior, fractions, design.alpha)
    _test([r for r in records if r["role"] == "control"], prior, fractions, design.alpha)
    if seeds >= design.max_seeds:
        for r in records:
            r["decision"] = "inconclusive" if r["decision"] == "continue" else r["decision"]
    return records


def looks_markdown(looks: pd.DataFrame, design: Design, stop: str) -> str:
    """``OUT/sequential.md``: the design, one line per look and claim, and why the loop stopped."""
    lines = [
        f"Seeds were added {design.batch_seeds} at a time, up to {design.max_seeds}, for the rows "
        f"{', '.join(f'`{r}`' for r in design.rows)}; after each batch the primary claims were tested with "
        "Lan-DeMets O'Brien-Fleming boundaries (information fraction = seeds / "
        f"{design.max_seeds}, two-sided, family-wise alpha {design.alpha:g}) on the t scale, with Holm across the "
        "primary claims (Maurer & Bretz 2013); the positive control with the same boundaries at full alpha. A claim "
        "is decided when |t| reaches its boundary; equivalently when its repeated confidence interval (estimate ± "
        "t boundary · se) excludes 0. The 95% intervals are the fixed-sample ones, shown for reference: after "
        "optional stopping they are too narrow (docs/verdicts.md).",
        "",
        "| look | seeds | claim | family | estimate [95% CI] | repeated CI | t (df) | boundary t (level) | decision "
        "| minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in looks.to_dict("records"):
        comparison = f"`{r['row']}` - `{r['reference']}`" if isinstance(r["reference"], str) else f"`{r['row']}`"
        comparison += f" ({r['statistic']})"
        rci = (f"[{signed(r['rci_low'])}, {signed(r['rci_high'])}]"
               if np.isfinite(r.get("rci_low", np.nan)) else "")  # fmt: skip
        bound = f"{r['t_boundary']:.2f} ({r['alpha_local']:.3g})" if np.isfinite(r.get("t_boundary", np.nan)) else ""
        lines.append(f"| {r['look']} | {r['seeds']} | {comparison} | {r['role']} | {signed(r['estimate'])} "
                     f"[{signed(r['low'])}, {signed(r['high'])}] | {rci} | {r['t']:.2f} ({r['df']:.1f}) | {bound} | "
                     f"**{r['decision']}** | {r['seconds'] / 60:.1f} |")  # fmt: skip
    return "\n".join(lines) + f"\n\n**Stopped:** {stop}\n"


def _stop_reason(looks: pd.DataFrame, design: Design) -> str | None:
    """Why the recorded looks end the loop (None: they do not)."""
    if looks.empty:
        return None
    last = looks[looks["look"] == looks["look"].max()]
    primary = last[last["role"] == "primary"]
    if len(primary) and primary["decision"].isin(DECIDED).all():
        return f"every primary claim decided at look {int(last['look'].iloc[0])} ({int(last['seeds_planned'].iloc[0])} seeds)."
    if int(last["seeds_planned"].iloc[0]) >= design.max_seeds:
        return f"the cap of {design.max_seeds} seeds reached; undecided primary claims are inconclusive."
    return None


def until_decided(
    design: Design,
    out: str | Path,
    budget_hours: float | None = None,
    jobs: int | None = None,
    log: Callable[[str], None] = print,
    train: Callable[..., Path] = reproduce,
    executor: ExecutorChoice | None = None,
) -> Path:
    """Run the sequential design into ``out`` (module docstring); the path of the report. ``train``: the
    experiment to run at each look (``reproduce``; tests pass a stub with its signature); ``executor``: what
    trains its runs (default: this machine's processes)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _check_design(out, design)
    looks = _read_looks(out)
    sizes = design.looks()
    call = dict(rows=list(design.rows), overrides=list(design.overrides), slices=design.slices, jobs=jobs,
                phantom_seed=design.phantom_seed, manifest=design.manifest, log=log, executor=executor)  # fmt: skip
    stop = _stop_reason(looks, design)
    look = int(looks["look"].max()) if len(looks) else 0
    while stop is None:
        seeds = sizes[look]
        spent = float(looks.drop_duplicates("look")["seconds"].sum()) if len(looks) else 0.0
        if budget_hours is not None and look > 0:
            per_seed = spent / sizes[look - 1]
            if spent + per_seed * (seeds - sizes[look - 1]) > budget_hours * 3600:
                stop = (f"the budget of {budget_hours:g} h: {spent / 3600:.2f} h spent, the next batch would take "
                        f"about {per_seed * (seeds - sizes[look - 1]) / 3600:.2f} h.")  # fmt: skip
                break
        look += 1
        log(f"until decided: look {look} of at most {len(sizes)}, {seeds} seeds")
        start = time.perf_counter()
        train(design.preset, out, seeds=list(range(seeds)), with_audit=False, **call)
        claims = pd.read_csv(out / "claims.csv")
        prior = {} if looks.empty else {
            _key(r): (r["decision"], r["decided_at"]) for r in looks[looks["look"] == look - 1].to_dict("records")
        }  # fmt: skip
        records = _look_records(claims, look, seeds, design, prior)
        seconds = time.perf_counter() - start
        for r in records:
            r["seconds"], r["hours_spent"] = seconds, (spent + seconds) / 3600
        looks = pd.concat([looks, pd.DataFrame(records)], ignore_index=True)
        with atomic_path(out / LOOKS_FILE) as tmp:
            looks.to_csv(tmp, index=False)
        for r in records:
            reference = r["reference"] if isinstance(r["reference"], str) and r["reference"] else "0"
            log(f"  look {look}: {r['row']} - {reference} ({r['statistic']}, {r['role']}): "
                f"{r['estimate']:+.3f}, t {r['t']:.2f} (df {r['df']:.1f}) -> {r['decision']}")  # fmt: skip
        stop = _stop_reason(looks, design)
    atomic_write_text(out / LOOKS_MD, looks_markdown(looks, design, stop))
    log(f"until decided: stopped: {stop}")
    final = sizes[look - 1] if look else sizes[0]
    return train(design.preset, out, seeds=list(range(final)), with_audit=True, **call)


def run_from_args(args, executor: ExecutorChoice | None = None) -> Path:
    """``reproduce --until-decided`` from the command line's namespace (:mod:`mtlswin.cli.reproduce`)."""
    if args.seeds is not None:
        raise ValueError("--until-decided chooses the seeds (0, 1, ... in batches of --batch-seeds); drop --seeds")
    design = Design(args.preset, family_rows(args.preset, args.rows), args.max_seeds, args.batch_seeds,
                    phantom_seed=args.phantom_seed, overrides=tuple(args.overrides or ()), slices=args.slices,
                    manifest=str(Path(args.manifest).resolve()) if args.manifest else None)  # fmt: skip
    return until_decided(design, args.out, args.budget, args.jobs, executor=executor)
