"""The ``mtlswin`` command line: parses arguments and calls the library, nothing more.

Each sub-module adds its sub-commands with ``register(subparsers)``; a sub-command sets
``func`` (called with the parsed namespace, returning an exit code or None).
"""

from __future__ import annotations

import argparse
import sys

from mtlswin import __version__
from mtlswin.cli import data, explain, models, reproduce, synth, train

_COMMAND_MODULES = (models, data, synth, train, explain, reproduce)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlswin",
        description="Multitask Swin Transformers for CT classification under spurious correlation.",
    )
    parser.add_argument("--version", action="version", version=f"mtlswin {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    code = args.func(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
