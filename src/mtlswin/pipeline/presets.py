"""Presets of ``mtlswin reproduce``: which Table-1 rows to train, at which size, with which seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlswin.paper_table import TABLE1_LABELS
from mtlswin.pipeline.claims import CLAIMS, Claim, method_claims

# The 12 rows of the paper's Table 1, in the paper's order (config file stem -> label in tables).
TABLE1_ROWS = TABLE1_LABELS
# The published alternatives that use the same masks or cue labels (issue 21; docs/methods.md): config stem ->
# label. ``swin_dfr`` is not trained: it is the trained ``swin`` run with its last layer refitted by DFR.
METHOD_ROWS = {
    "swin_rrr": "Swin + Right for the Right Reasons (masks)",
    "swin_cam_align": "Swin + CAM alignment (masks)",
    "seg_gated_swin": "Segmentation for classification (masks)",
    "swin_groupdro": "Swin + GroupDRO (cue labels)",
    "swin_dfr": "Swin + Deep Feature Reweighting (cue labels)",
}
ALL_ROWS = {**TABLE1_ROWS, **METHOD_ROWS}
DERIVED_ROWS = {"swin_dfr": "swin"}  # row -> the trained row it is made from (after training, before evaluation)

# Rows whose frozen encoder comes from a trained Swin-Unet run, and the run they need. Joint-Swin-tiny's
# frozen encoder has Swin-T depths, so it needs an auxiliary Swin-Unet trained with them (not a Table-1 row).
SEGMENTATION_RUN_FOR = {"joint_swin": "swin_unet", "joint_swin_tiny": "swin_unet_tiny", "seg_gated_swin": "swin_unet"}
NEEDS_SEGMENTATION_RUN = tuple(SEGMENTATION_RUN_FOR)
AUXILIARY_ROWS = ("swin_unet_tiny",)


@dataclass(frozen=True)
class Preset:
    """One way to run the paper's experiment.

    ``config_dir`` is the folder of ``configs/`` holding one YAML per row; ``phantom`` the phantom
    preset generated when the user gives no manifest (None: a manifest is required), with
    ``phantom_options`` (fields of :class:`mtlswin.data.phantom.SynthConfig`: slices, size, twins, ...);
    ``split_options`` are keyword arguments of :func:`mtlswin.data.splits.make_splits` that depart from
    the paper's protocol (the report states them); ``strengths``: spurious strengths of a dose-response
    sweep (one phantom and one set of runs per strength; empty: one phantom at the default 0.9);
    ``draw_per_seed``: each training seed trains and is tested on a phantom draw of its own (the rows of one
    seed share it), so that the claims' intervals cover the data draw as well as the training seed;
    ``claims``: the comparisons tested (the paper's, or the alternatives'); ``cue_probe``: probe every
    classifier's features for the cue on test B; ``mask_budgets``: train the rows once per share of the training
    masks kept (``data.mask_fraction``), on the same data, into ``OUT/mask-<f>/``.
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
    strengths: tuple[float, ...] = ()
    draw_per_seed: bool = False
    claims: tuple[Claim, ...] = CLAIMS
    cue_probe: bool = False
    mask_budgets: tuple[float, ...] = ()


# The demo's data: enough slices for statistics with power (>= 40 positives in each test set, > 3,000
# training slices), generated at 128 px (the models see 64 px), with counterfactual twins of every slice of
# the hospitals the test sets come from. Splits: test A = 25% of hospital 1 (the paper: 10%) and test B =
# every slice of hospitals 5-11 (the paper: a sample matched to test A's size and positive rate).
DEMO_PHANTOM = {"slices": 6000, "size": 128, "twin_hospitals": (1, *range(5, 12))}
DEMO_SPLITS = {"test_a_fraction": 0.25, "test_b_size": "all"}
# The alternatives' data: the demo phantom plus two trap hospitals (cue anti-correlated with the label at the
# training hospitals' strength, profiles of hospitals 1 and 2, every slice with its twin; as many slices as test B).
METHODS_PHANTOM = {**DEMO_PHANTOM, "trap_hospitals": 2}
METHODS = ("mtl_cls_seg", "swin_rrr", "swin_cam_align", "seg_gated_swin", "swin_groupdro", "swin_dfr")
# The rows the demo must have within 30 min at the calibrated 24 epochs (issue 19): Swin, MTL-Swin-Unet (cls+seg),
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
        rows=tuple(TABLE1_ROWS),
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
        "and 0.9, 24 epochs (18.5 min measured on 2 cores; add rows with --rows)",
        phantom_options=DEMO_PHANTOM,
        split_options=DEMO_SPLITS,
        draw_per_seed=True,
        strengths=(0.0, 0.5, 0.9),
    ),
    "methods": Preset(
        name="methods",
        config_dir="demo",
        rows=("swin", *METHODS),
        seeds=(0, 1, 2),
        phantom="demo",
        description="CPU, the alternatives a reviewer asks for (RRR, CAM alignment, segmentation for classification, "
        "GroupDRO, DFR) beside Swin and MTL-Swin-Unet (cls+seg), seeds 0-2, one phantom draw per seed with a trap "
        "test set, the demo's recipe (53.1 min measured on 2 cores)",
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
        "training slices that have one (whole patients), seeds 0-2, one phantom draw per seed with a trap test set "
        "(53.7 min measured on 2 cores)",
        phantom_options=METHODS_PHANTOM,
        split_options=DEMO_SPLITS,
        draw_per_seed=True,
        claims=(),
        mask_budgets=(1.0, 0.3, 0.1),
    ),
    "paper": Preset(
        name="paper",
        config_dir="paper",
        rows=tuple(TABLE1_ROWS),
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


def ordered_rows(rows: tuple[str, ...]) -> list[str]:
    """Rows in training order: the Swin-Unet runs come before the Joint-Swin rows that need them."""
    unknown = [r for r in rows if r not in ALL_ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from: {', '.join(ALL_ROWS)}")
    rows_list = list(dict.fromkeys(rows))
    for row in rows:
        needed = SEGMENTATION_RUN_FOR.get(row) or DERIVED_ROWS.get(row)
        if needed and needed not in rows_list:
            rows_list.append(needed)
    order = [*AUXILIARY_ROWS, *ALL_ROWS]
    return sorted(rows_list, key=lambda r: (r in DERIVED_ROWS, r in NEEDS_SEGMENTATION_RUN, order.index(r)))
