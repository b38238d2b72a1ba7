"""``mtlswin convert``: a foreign checkpoint (ImageNet Swin, the authors' code, Swin-Unet) -> our checkpoint."""

from __future__ import annotations

import argparse

import yaml

from mtlswin.models.conversion.convert import convert_file

FORMATS = ("swin-imagenet", "authors-mtl", "authors-joint", "swin-unet")


def parse_set(items: list[str]) -> dict:
    """``["depths=[2,2,6,2]", "tasks=cls+seg"]`` -> ``{"depths": [2, 2, 6, 2], "tasks": "cls+seg"}`` (YAML values)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {item!r} (e.g. --set tasks=cls+seg)")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run_convert(args: argparse.Namespace) -> int:
    model, report = convert_file(
        args.source_format,
        args.src,
        args.out,
        model_name=args.model,
        overrides=parse_set(args.set or []),
        allow_partial=args.allow_partial,
    )
    print(f"model: {model.model_name} {model.config}")
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


def register(subparsers) -> None:
    """Add ``convert`` to ``subparsers``."""
    p = subparsers.add_parser(
        "convert",
        help="convert a foreign checkpoint into ours (safetensors + model config)",
        description="Convert ImageNet Swin, authors' MTL-Swin-Unet / Joint-SwinTransformer or Swin-Unet weights "
        "into an mtlswin checkpoint that mtlswin.models.load_model rebuilds alone. Sizes are read off the "
        "file for the authors' formats; --set overrides any model option. Prints the load report.",
    )
    p.add_argument("--from", dest="source_format", required=True, choices=FORMATS, help="format of SRC")
    p.add_argument("src", help="foreign checkpoint (.pth read with weights_only=True, or .safetensors)")
    p.add_argument("out", help="our checkpoint to write (.safetensors)")
    p.add_argument("--model", default=None, help="registry name (default: swin, mtl_swin_unet, joint_swin, swin_unet)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model option override, repeatable")
    p.add_argument("--allow-partial", action="store_true", help="accept missing/unexpected keys (listed in the report)")
    p.set_defaults(func=run_convert)
