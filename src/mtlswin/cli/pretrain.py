"""Sub-command ``pretrain``: SimMIM self-supervised pretraining of a Swin encoder (parsing only; the work is in
:mod:`mtlswin.pretrain`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlswin.pretrain.config import load_pretrain_config
from mtlswin.pretrain.run import pretrain


def register(subparsers) -> None:
    """Add ``pretrain`` to ``subparsers``."""
    p = subparsers.add_parser(
        "pretrain", help="self-supervised (SimMIM) pretraining of a Swin encoder on unlabeled slices"
    )
    p.add_argument("config", nargs="?", default=None,
                   help="YAML pretrain config (configs/demo/pretrain.yaml) or a pretrain run folder to resume")  # fmt: skip
    p.add_argument("inputs", nargs="*", default=[],
                   help="manifest CSVs, folders, image files, NIfTI volumes, DICOM series folders (added to data.inputs)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="override a config key, repeatable: --set pretrain.mask_ratio=0.6")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.ckpt")
    p.set_defaults(func=_pretrain)


def _pretrain(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else None
    inputs = list(args.inputs)
    if path is not None and path.suffix.lower() not in (".yaml", ".yml"):
        if (path / "config.yaml").is_file():  # a run folder: its resolved config
            path = path / "config.yaml"
        else:  # not a config: the first input (e.g. `mtlswin pretrain DIR --set ...`)
            path, inputs = None, [args.config, *inputs]
    config = load_pretrain_config(path, args.overrides or [])
    config.data.inputs = [*config.data.inputs, *map(str, inputs)]
    run_dir = pretrain(config, resume=args.resume)
    print(f"encoder: {run_dir / 'encoder.safetensors'} (use it as model.pretrained)")
    return 0
