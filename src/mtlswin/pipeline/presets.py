"""Presets of ``mtlswin reproduce``: which rows to train, at which size, with which seeds, along which axis."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlswin.pipeline.claims import CLAIMS, Claim, method_claims
from mtlswin.pipeline.rows import table1_rows

__all__ = ["AXIS_KINDS", "PRESETS", "Axis", "AxisKind", "Point", "Preset", "get_preset"]


@dataclass(frozen=True)
class AxisKind:
    """What a preset's axis varies between its sub-experiments, and how one value reaches them.

    ``folder`` and ``label`` format a value into the sub-experiment's folder under ``OUT`` and the tag of its
    stage names; ``override`` (if any) formats it into a ``key=value`` override of every row; ``spurious``:
    the value is the phantom's spurious strength (one phantom per value, so no ``--manifest``);
    ``shared_data``: every value trains on the same data, drawn once under ``OUT``.
    """

    folder: str
    label: str
    override: str | None = None
    spurious: bool = False
    shared_data: bool = False


AXIS_KINDS = {
    # dose-response: the same rows on phantoms that differ only in the cue-label correlation (OUT/spurious-<s>/)
    "spurious_strength": AxisKind("spurious-{:g}", "spurious {:g}", spurious=True),
    # Saab et al.'s axis: the share of the training masks kept (whole patients), same data (OUT/mask-<f>/)
    "mask_budget": AxisKind("mask-{:g}", "masks {:g}", override="data.mask_fraction={}", shared_data=True),
}


@dataclass(frozen=True)
class Point:
    """One sub-experiment of a preset: its ``folder`` under ``OUT`` (empty: ``OUT`` itself), the ``label`` of its
    stages (None: no tag), the phantom's ``spurious`` strength (None: the preset's), extra ``overrides`` of
    every row, and whether its data is shared with the other points (drawn under ``OUT``)."""

    value: float | None = None
    folder: str = ""
    label: str | None = None
    spurious: float | None = None
    overrides: tuple[str, ...] = ()
    shared_data: bool = False


@dataclass(frozen=True)
class Axis:
    """The one thing a preset varies between sub-experiments: ``kind`` (a key of :data:`AXIS_KINDS`) and its
    ``values``, one sub-experiment each. The training seeds vary inside every sub-experiment."""

    kind: str
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in AXIS_KINDS:
            raise ValueError(f"unknown axis kind {self.kind!r}; choose one of: {', '.join(AXIS_KINDS)}")
        if not self.values:
            raise ValueError(f"axis {self.kind!r} has no values")

    def points(self) -> tuple[Point, ...]:
        kind = AXIS_KINDS[self.kind]
        return tuple(
            Point(value, kind.folder.format(value), kind.label.format(value), value if kind.spurious else None,
                  (kind.override.format(value),) if kind.override else (), kind.shared_data)
            for value in self.values
        )  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """One way to run the paper's experiment.

    ``config_dir`` is the folder of ``configs/`` holding one YAML per row; ``phantom`` the phantom
    preset generated when the user gives no manifest (None: a manifest is required), with
    ``phantom_options`` (fields of :class:`mtlswin.data.phantom.SynthConfig`: slices, size, twins, ...);
    ``split_options`` are keyword arguments of :func:`mtlswin.data.splits.make_splits` that depart from
    the paper's protocol (the report states them); ``axis``: what varies between the preset's
    sub-experiments (:class:`Axis`: one phantom and one set of runs per spurious strength, or one set of runs
    per share of the training masks kept, on the same data); None: one experiment in ``OUT``;
    ``draw_per_seed``: each training seed trains and is tested on a phantom draw of its own (the rows of one
    seed share it), so that the claims' intervals cover the data draw as well as the training seed;
    ``claims``: the comparisons tested (the paper's, or the alternatives'); ``cue_probe``: probe every
    classifier's features for the cue on test B.
    """

    name: str
    config_dir: str
    rows: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    phantom: str | None = "demo"
    overrides: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    phantom_options: dict = field(default_factory=dict)
    split_options: dict = field(default_factory=dict)
    axis: Axis | None = None
    draw_per_seed: bool = False
    claims: tuple[Claim, ...] = CLAIMS
    cue_probe: bool = False

    def points(self) -> tuple[Point, ...]:
        """The sub-experiments: one per value of the axis, or the whole of ``OUT`` without one."""
        return self.axis.points() if self.axis is not None else (Point(),)


# The demo's data: enough slices for statistics with power (>= 40 positives in each test set, > 3,000
# training slices), generated at 128 px (the models see 64 px), with counterfactual twins of every slice of
# the hospitals the test sets come from. Splits: test A = 25% of hospital 1 (the paper: 10%) and test B =
# every slice of hospitals 5-11 (the paper: a sample matched to test A's size and positive rate).
# test_scale 2: test B (hospitals 5-11, and the trap hospitals) twice as many slices and patients, hospitals 1-4
# unchanged, so that the test patients' noise is small next to the seeds' (the rule: docs/verdicts.md, "Test sets").
DEMO_PHANTOM = {"slices": 6000, "size": 128, "twin_hospitals": (1, *range(5, 12)), "test_scale": 2}
DEMO_SPLITS = {"test_a_fraction": 0.25, "test_b_size": "all"}
# The alternatives' data: the demo phantom plus two trap hospitals (cue anti-correlated with the label at the
# training hospitals' strength, profiles of hospitals 1 and 2, every slice with its twin; as many slices as test B).
METHODS_PHANTOM = {**DEMO_PHANTOM, "trap_hospitals": 2}
METHODS = ("mtl_cls_seg", "swin_rrr", "swin_cam_align", "seg_gated_swin", "swin_groupdro", "swin_dfr")
# The rows the demo has, chosen to fit its time on 2 CPU cores at the calibrated 24 epochs: Swin, MTL-Swin-Unet (cls+seg),
# and Joint-Swin with the Swin-Unet it freezes. cls+seg+rec and the rest are in demo-full.
HEADLINE_ROWS = ("swin", "swin_unet", "joint_swin", "mtl_cls_seg")

PRESETS: dict[str, Preset] = {
    "demo": Preset(
        name="demo",
        config_dir="demo",
        rows=HEADLINE_ROWS,
        seeds=(0, 1, 2),
        phantom="demo",
        description="CPU, headline rows (Swin, Swin-Unet, Joint-Swin, MTL-Swin-Unet cls+seg), seeds 0-2, tiny models on "
        "the demo phantom, the calibrated 24 epochs",
        phantom_options=DEMO_PHANTOM,
        split_options=DEMO_SPLITS,
        draw_per_seed=True,
    ),
    "demo-full": Preset(
        name="demo-full",
        config_dir="demo",
        rows=table1_rows(),
        seeds=(0, 1, 2),
        phantom="demo",
        description="CPU, all 12 rows at demo size, three seeds each, 24 epochs (not timed; several hours on 2 cores)",
        phantom_options=DEMO_PHANTOM,
        split_options=DEMO_SPLITS,
        draw_per_seed=True,
    ),
    "shortcut-sweep": Preset(
        name="shortcut-sweep",
        config_dir="demo",
        rows=("swin", "mtl_cls_seg"),
        seeds=(0,),
        phantom="demo",
        description="CPU, dose-response: Swin and MTL-Swin-Unet (cls+seg), seed 0, at spurious strength 0, 0.5 "
        "and 0.9, 24 epochs (add rows with --rows)",
        phantom_options=DEMO_PHANTOM,
        split_options=DEMO_SPLITS,
        draw_per_seed=True,
        axis=Axis("spurious_strength", (0.0, 0.5, 0.9)),
    ),
    "methods": Preset(
        name="methods",
        config_dir="demo",
        rows=("swin", *METHODS),
        seeds=(0, 1, 2),
        phantom="demo",
        description="CPU, the alternatives a reviewer asks for (RRR, CAM alignment, segmentation for classification, "
        "GroupDRO, DFR) beside Swin and MTL-Swin-Unet (cls+seg), seeds 0-2, one phantom draw per seed with a trap "
        "test set, the demo's recipe",
        phantom_options=METHODS_PHANTOM,
        split_options=DEMO_SPLITS,
        draw_per_seed=True,
        claims=method_claims(METHODS),
        cue_probe=True,
    ),
    "mask-budget": Preset(
        name="mask-budget",
        config_dir="demo",
        rows=("mtl_cls_seg", "swin_rrr"),
        seeds=(0, 1, 2),
        phantom="demo",
        description="CPU, Saab et al.'s axis: MTL-Swin-Unet (cls+seg) and RRR with masks on 100%, 30% and 10% of the "
        "training slices that have one (whole patients), seeds 0-2, one phantom draw per seed with a trap test set",
        phantom_options=METHODS_PHANTOM,
        split_options=DEMO_SPLITS,
        draw_per_seed=True,
        claims=(),
        axis=Axis("mask_budget", (1.0, 0.3, 0.1)),
    ),
    "paper": Preset(
        name="paper",
        config_dir="paper",
        rows=table1_rows(),
        seeds=(0,),
        phantom="paper",
        description="GPU, all 12 rows with the paper's sizes, epochs and hyper-parameters",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a ``ValueError`` listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
