"""The rule of docs/explanations.md that chooses each model family's attribution method, run on validation data.

For each family's run: every candidate method (:data:`mtlswin.explain.attribution.METHODS`) is sanity-checked
by parameter randomisation (:mod:`mtlswin.explain.sanity`, cascading and independent) on the first
``n_sanity`` slices of the split with a hematoma mask, and its faithfulness is measured by ROAD
(:mod:`mtlswin.explain.faithfulness`) on the first ``n_road`` slices with the positive label. A method is
*eligible* when it passes the sanity check and the known-answer tests its family requires
(:mod:`mtlswin.explain.known_answers`). The chosen method is the most faithful eligible one (a tie within
:data:`TIE` goes to the earlier candidate); when none is eligible, the most faithful of all, marked as not
evidence. ``select_methods`` writes into ``out``:

- ``sanity.csv``: family, method, variant, step, block, spearman, ssim (every randomisation step);
- ``sanity_summary.csv``: family, method, spearman_full, ssim_full, passes (the end of the cascade);
- ``faithfulness.csv``: family, method, road (mean), road_lo, road_hi (95% percentile bootstrap over slices), n;
- ``chosen.csv``: family, method, eligible, road, reason; ``selection.md``: the tables in Markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtlswin.explain.attribution import METHODS, attribute
from mtlswin.explain.defaults import default_stage
from mtlswin.explain.faithfulness import road_scores
from mtlswin.explain.known_answers import passes_known_answers, required_checks
from mtlswin.explain.sanity import sanity_table, sanity_verdict
from mtlswin.io import atomic_path, atomic_write_text, created_dir
from mtlswin.runs import Run
from mtlswin.stats import bootstrap_ci

__all__ = ["TIE", "choose", "select_methods", "selection_slices"]

TIE = 0.001  # ROAD means closer than this are a tie, decided by the candidates' order


def selection_slices(run: Run, split: str, n_sanity: int, n_road: int, batch_size: int = 16
                     ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The first ``n_sanity`` slices of ``split`` with a non-empty hematoma mask and the first ``n_road`` with the
    positive label, in manifest order, as ``(N, 1, H, W)`` images."""
    dm = run.datamodule(batch_size=batch_size, num_workers=0)
    masked, positive = [], []
    for batch in dm.dataloader(split, shuffle=False, augment=False):
        has = batch["has_mask"].numpy().astype(bool) & (batch["mask"].flatten(1) > 0).any(dim=1).numpy()
        masked += list(batch["image"][has])
        positive += list(batch["image"][batch["label"].numpy() == 1])
        if len(masked) >= n_sanity and len(positive) >= n_road:
            break
    if not masked or not positive:
        raise ValueError(f"split {split!r} of {run.path} has {len(masked)} masked and {len(positive)} positive "
                         "slices; the selection needs both")  # fmt: skip
    return torch.stack(masked[:n_sanity]), torch.stack(positive[:n_road])


def choose(summary: pd.DataFrame, faithfulness: pd.DataFrame, order: Sequence[str] = METHODS) -> pd.DataFrame:
    """The rule: per family, the most faithful eligible method (sanity check passed, and the family's known-answer
    tests; ties within :data:`TIE`: the earlier in ``order``); with none eligible, the most faithful of all, marked
    ``eligible = False`` (its maps are not evidence)."""
    table = summary.merge(faithfulness[["family", "method", "road"]], on=["family", "method"])
    table["known_answers"] = [passes_known_answers(f, m) for f, m in zip(table["family"], table["method"])]
    table["eligible"] = table["passes"].astype(bool) & table["known_answers"]
    rows = []
    for family, frame in table.groupby("family", sort=False):
        checks = "+".join(required_checks(str(family)))
        eligible = frame[frame["eligible"]]
        if len(eligible):
            pool, reason = eligible, f"most faithful (ROAD) of the methods that pass the sanity check and {checks}"
        else:
            pool, reason = frame, f"no method passes both the sanity check and {checks}: most faithful of all, " \
                "its maps are not evidence"  # fmt: skip
        best = pool["road"].max()
        tied = pool[pool["road"] >= best - TIE]
        method = min(tied["method"], key=lambda m: order.index(m) if m in order else len(order))
        pick = frame[frame["method"] == method].iloc[0]
        rows.append({"family": family, "method": method, "eligible": bool(pick["eligible"]),
                     "road": float(pick["road"]), "reason": reason})  # fmt: skip
    return pd.DataFrame(rows)


def _faithfulness(run: Run, images: torch.Tensor, method: str, stage: int | None, seed: int) -> dict:
    maps = attribute(run.model, images, method, stage=stage)
    scores = road_scores(run.model, images, maps, seed=seed)
    mean, low, high = bootstrap_ci(np.mean, scores, n_resamples=2000, seed=seed)
    return {"road": float(mean), "road_lo": float(low), "road_hi": float(high), "n": len(scores)}


def _markdown(summary: pd.DataFrame, faith: pd.DataFrame, chosen: pd.DataFrame, split: str) -> str:
    lines = [f"# Attribution method selection on split `{split}`", "",
             "## Sanity check: similarity to the fully randomised model (fails at 0.5 or above on either)", "",
             "| family | method | Spearman | SSIM | passes |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r.family} | {r.method} | {r.spearman_full:.3f} | {r.ssim_full:.3f} | {'yes' if r.passes else 'no'} |"
              for r in summary.itertuples()]  # fmt: skip
    lines += ["", "## Faithfulness: ROAD combined (higher is more faithful), mean [95% CI]", "",
              "| family | method | ROAD | n |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r.family} | {r.method} | {r.road:.4f} [{r.road_lo:.4f}, {r.road_hi:.4f}] | {r.n} |"
              for r in faith.itertuples()]  # fmt: skip
    lines += ["", "## Chosen", "", "| family | method | eligible | ROAD | why |", "|---|---|---|---|---|"]
    lines += [f"| {r.family} | {r.method} | {'yes' if r.eligible else 'no'} | {r.road:.4f} | {r.reason} |"
              for r in chosen.itertuples()]  # fmt: skip
    return "\n".join(lines) + "\n"


def select_methods(
    runs: Mapping[str, str | Path],
    out: str | Path,
    split: str = "val",
    methods: Sequence[str] = METHODS,
    n_sanity: int = 16,
    n_road: int = 32,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Apply the rule to ``runs`` (family -> run folder) on ``split``; write the tables into ``out``; return
    ``chosen`` (family, method, eligible, road, reason)."""
    steps, summaries, faiths = [], [], []
    for family, path in runs.items():
        run = Run.open(path)
        sanity_images, road_images = selection_slices(run, split, n_sanity, n_road)
        stage = default_stage(run.model)
        for method in methods:
            table = sanity_table(run.model, sanity_images, method, stage=stage, seed=seed)
            verdict = sanity_verdict(table)
            steps.append(table.assign(family=family, method=method))
            summaries.append({"family": family, "method": method, "spearman_full": float(verdict["spearman_full"]),
                              "ssim_full": float(verdict["ssim_full"]), "passes": bool(verdict["passes"])})  # fmt: skip
            faiths.append({"family": family, "method": method, **_faithfulness(run, road_images, method, stage, seed)})
            log(f"{family} {method}: sanity rho {verdict['spearman_full']:.3f} SSIM {verdict['ssim_full']:.3f} "
                f"({'passes' if verdict['passes'] else 'fails'}), ROAD {faiths[-1]['road']:.4f}")  # fmt: skip
    summary, faith = pd.DataFrame(summaries), pd.DataFrame(faiths)
    chosen = choose(summary, faith, methods)
    with created_dir(Path(out)) as folder:
        for name, frame in (("sanity", pd.concat(steps, ignore_index=True)), ("sanity_summary", summary),
                            ("faithfulness", faith), ("chosen", chosen)):  # fmt: skip
            with atomic_path(folder / f"{name}.csv") as tmp:
                frame.to_csv(tmp, index=False)
        atomic_write_text(folder / "selection.md", _markdown(summary, faith, chosen, split))
    return chosen
