"""The report of one experiment: ``OUT/report.md`` (:func:`mtlswin.evaluation.report.write_report`'s results, with
the preset, the recipe, the data and splits, the alternatives, the claims, the paper's Table 1 and the time per
stage around them)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from mtlswin.evaluation.report import write_report as write_results
from mtlswin.io import atomic_write_text
from mtlswin.paper_table import PAPER_TABLE1_MD
from mtlswin.pipeline.claims import CLAIMS, row_of
from mtlswin.pipeline.executors.local import default_jobs
from mtlswin.pipeline.initialisation import initialisation_markdown
from mtlswin.pipeline.methods import methods_markdown, methods_table
from mtlswin.pipeline.plan import Assumptions, folder_plan
from mtlswin.pipeline.presets import Preset
from mtlswin.pipeline.rows import method_rows, row_labels
from mtlswin.pipeline.stages import time_table

__all__ = ["DEMO_RECIPE_NOTE", "FAILED_RUNS", "clear_failed_runs", "write_failed_runs", "write_report"]

FAILED_RUNS = "failed_runs.md"

DEMO_RECIPE_NOTE = (
    "**Recipe.** The paper fine-tunes ImageNet-initialised encoders with SGD (momentum 0.9, poly decay). No "
    "ImageNet weights can be had offline, and from scratch that recipe leaves a Swin at chance on this data "
    "(measured: SGD 0.05 for 300 steps, val AUC 0.41-0.55; a linear probe on the same pixels reaches 0.9). The "
    "demo therefore trains every row from scratch with one recipe: input standardised with the train split's "
    "mean and std (saved in the model), AdamW 5e-4, 60 warm-up steps, cosine decay, no drop path, batch 32, "
    "24 epochs. The 24 epochs were chosen "
    "blind to the claim, from plain Swin alone on a phantom without the spurious cue (mean test-A AUC .928 over "
    "seeds 0-2, the criterion being >= .90; 6 epochs gave .735, and SimMIM pretraining on a separate unlabeled "
    "draw of 6,000 slices for 20 epochs did not help: docs/calibration.md). The `paper` configs keep the paper's "
    "recipe.\n\n"
)


def _head(out: Path, preset: Preset, runs: list[Path], protocol: str) -> str:
    """What comes before the results table: the preset, the test sets, the recipe, data, alternatives, claims."""
    head = (
        f"# mtlswin reproduce: preset `{preset.name}`\n\n{preset.description}.\n\n"
        "Test A = slices of hospital 1 (where the spurious cue holds in training); test B = hospitals 5-11 "
        "(covariate shift, cue independent of the label). F1 = macro F1.\n\n"
    )
    if preset.config_dir == "demo":
        head += DEMO_RECIPE_NOTE
    head += initialisation_markdown(runs) + protocol
    if any(row_of(r) in method_rows() for r in runs):
        head += "\n## The alternatives, side by side\n\n" + methods_markdown(methods_table(runs), row_labels()) + "\n"
    if (out / "claims.md").is_file():
        title = "The paper's claims, tested" if preset.claims == CLAIMS else "The comparisons, tested"
        head += f"\n## {title}\n\n" + (out / "claims.md").read_text() + "\n"
    if (out / "sequential.md").is_file():
        head += "\n## Seeds added until decided\n\n" + (out / "sequential.md").read_text() + "\n"
    if (out / "claims.csv").is_file():
        _, plan = folder_plan(out, Assumptions(default_jobs(cpu_only=preset.config_dir == "demo")), preset.claims)
        head += "\n## What deciding would take\n\n" + plan + "\n"
    return head


def write_report(
    out: Path,
    preset: Preset,
    runs: list[Path],
    audit: Path,
    timings: dict[str, float],
    protocol: str = "",
    skipped: Collection[str] = (),
) -> Path:
    """Write ``out/report.md`` for ``runs`` (and the audit in ``audit``, where it is complete); its path."""
    report = write_results(runs, out, audit=audit if (audit / "audit.md").is_file() else None)
    text = report.read_text()
    text = text.replace("# Results (Table 1 layout)", _head(out, preset, runs, protocol) + "## Results (Table 1 layout)",
                        1)  # fmt: skip
    text += (
        "\n## The paper's Table 1, for orientation\n\n"
        "These are the numbers the paper reports on its private CT data at full size (224 px, 600 epochs, "
        "ImageNet-initialised encoders). The table above comes from different data (here: "
        f"{'the synthetic phantom' if preset.phantom else 'your manifest'}) and, for the demo presets, "
        "from tiny models trained for minutes on a CPU, so the two are not comparable number for number; "
        "compare the ordering of the rows, not the values.\n\n" + PAPER_TABLE1_MD
    )
    text += "\n" + time_table(timings, skipped)
    atomic_write_text(report, text)
    return report


def write_failed_runs(out: Path, preset: Preset, message: str) -> Path:
    """When a run fails: ``out/failed_runs.md`` (which run, where, its log and the end of its stderr) and a report
    that says so in its "Failed runs" section; the runs and stages done stay, and a rerun continues from them."""
    section = f"## Failed runs\n\n```\n{message.strip()}\n```\n"
    atomic_write_text(out / FAILED_RUNS, section)
    text = (
        f"# mtlswin reproduce: preset `{preset.name}`\n\n{preset.description}.\n\n**Stopped:** a training run "
        "failed (below). Fix its cause and run the same command again: what is done is kept.\n\n" + section
    )
    report = out / "report.md"
    atomic_write_text(report, text)
    return report


def clear_failed_runs(out: Path) -> None:
    """The runs trained after all: the failure record goes (the report is written anew at the end)."""
    (out / FAILED_RUNS).unlink(missing_ok=True)
