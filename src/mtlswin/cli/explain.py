"""Sub-commands ``mtlswin gradcam`` (maps of image files) and ``mtlswin audit`` (Grad-CAM vs. hematoma masks)."""

from __future__ import annotations

import argparse

from mtlswin.explain.audit import summary_markdown
from mtlswin.explain.collect import audit_runs
from mtlswin.explain.files import gradcam_files

# mtlswin.explain.attribution.ALL_METHODS (not imported here: the CLI starts without torch; a test keeps them equal).
METHODS = ("gradcam", "hirescam", "gradcam++", "layercam", "eigencam", "integrated_gradients", "input_x_gradient",
           "eigengradcam")  # fmt: skip


def _window(text: str):
    """``--window 40,80`` -> (40.0, 80.0); ``--window file`` -> "file"."""
    if text == "file":
        return text
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--window must be CENTER,WIDTH in HU (e.g. 40,80) or 'file', got {text!r}"
        ) from err
    return center, width


def _add_method(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=list(METHODS), default=None,
                        help="attribution method (default: the model family's, chosen by the rule of "
                        "docs/explanations.md; see mtlswin.explain.defaults)")  # fmt: skip


def _add_stage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", type=int, default=None,
                        help="Swin models, CAM methods: map the output of this encoder stage (0 = finest, the default) "
                        "instead of the bottleneck's; finer maps can resolve a small hematoma (the map size is "
                        "reported)")  # fmt: skip


def register(subparsers) -> None:
    """Add ``gradcam`` and ``audit`` to ``subparsers``."""
    p = subparsers.add_parser("gradcam", help="Grad-CAM maps (.npy + overlay PNG) of image files")
    p.add_argument("run", help="run folder (config.yaml + model.safetensors) or checkpoint file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="slice files: DICOM, PNG, .npy, NIfTI (vol.nii.gz#k)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mask", nargs="+", default=None, metavar="MASK", help="one mask file per input (outlined)")
    _add_method(p)
    p.add_argument("--target-class", type=int, default=1, help="class whose logit is explained (default 1 = positive)")
    p.add_argument("--aug-smooth", action="store_true", help="average over flips/scalings (test-time augmentation)")
    p.add_argument("--eigen-smooth", action="store_true", help="first principal component of the weighted activations")
    p.add_argument("--window", type=_window, default=None, help="HU window CENTER,WIDTH or 'file' (default: the run's)")
    _add_stage(p)
    p.set_defaults(func=_gradcam)

    a = subparsers.add_parser(
        "audit",
        help="where each model's evidence lies: map energy in the hematoma mask and the cue region (x chance), "
        "a sanity check per model, and a grid figure",
    )
    a.add_argument("runs", nargs="+", metavar="RUN", help="run folders or checkpoints (all use the same data)")
    a.add_argument("--split", default="test_a", help="split to audit (default test_a; needs slices with masks)")
    a.add_argument("--out", required=True, help="output folder for audit.md, audit.csv, gradcam_grid.png")
    _add_method(a)
    a.add_argument("--manifest", default=None, help="manifest CSV (default: each run's data.manifest)")
    a.add_argument("--splits", default=None, help="splits CSV (default: each run's data.splits)")
    a.add_argument("--batch-size", type=int, default=16)
    a.add_argument("--per-kind", type=int, default=2, help="grid rows per kind: positive / other marker / no hematoma")
    a.add_argument("--n-resamples", type=int, default=2000, help="bootstrap resamples for the 95%% CIs")
    a.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    _add_stage(a)
    a.set_defaults(func=_audit)

    e = subparsers.add_parser("explain-select", help="apply the rule of docs/explanations.md: sanity check and ROAD "
                              "faithfulness of every attribution method on each family's run, and the method chosen")  # fmt: skip
    e.add_argument("--run", action="append", required=True, metavar="FAMILY=RUN", type=_family_run,
                   help="a family (swin, mtl, joint, seg_gated, ...) and its run folder; repeat per family")  # fmt: skip
    e.add_argument("--out", required=True, help="output folder for the tables (sanity, faithfulness, chosen)")
    e.add_argument("--split", default="val", help="split the rule reads (default val: never a test set)")
    e.add_argument("--n-sanity", type=int, default=16, help="masked slices for the sanity check (default 16)")
    e.add_argument("--n-road", type=int, default=32, help="positive slices for ROAD (default 32)")
    e.add_argument("--seed", type=int, default=0, help="seed of the randomisation, ROAD's noise and the bootstrap")
    e.set_defaults(func=_select)


def _family_run(text: str) -> tuple[str, str]:
    family, sep, run = text.partition("=")
    if not sep or not family or not run:
        raise argparse.ArgumentTypeError(f"--run must be FAMILY=RUN_FOLDER (e.g. swin=runs/demo/runs/swin-seed0), "
                                         f"got {text!r}")  # fmt: skip
    return family, run


def _select(args: argparse.Namespace) -> int:
    from mtlswin.explain.selection import select_methods  # torch and captum: only when asked

    runs = dict(args.run)
    if len(runs) != len(args.run):
        raise SystemExit("mtlswin explain-select: error: a family is given twice")
    chosen = select_methods(runs, args.out, split=args.split, n_sanity=args.n_sanity, n_road=args.n_road,
                            seed=args.seed)  # fmt: skip
    print(chosen.to_string(index=False))
    return 0


def _gradcam(args: argparse.Namespace) -> int:
    written = gradcam_files(
        args.run,
        args.inputs,
        args.out,
        masks=args.mask,
        method=args.method,
        target_class=args.target_class,
        aug_smooth=args.aug_smooth,
        eigen_smooth=args.eigen_smooth,
        window=args.window,
        stage=args.stage,
    )
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    summary = audit_runs(
        args.runs,
        args.split,
        args.out,
        method=args.method,
        batch_size=args.batch_size,
        per_kind=args.per_kind,
        n_resamples=args.n_resamples,
        seed=args.seed,
        manifest=args.manifest,
        splits=args.splits,
        stage=args.stage,
    )
    print(summary_markdown(summary, args.split))
    return 0
