"""The ``mtlswin`` command line: parses arguments and calls the library, nothing more.

Each sub-module adds its sub-commands with ``register(subparsers)``; a sub-command sets
``func`` (called with the parsed namespace, returning an exit code or None).

One error boundary, :func:`main`: a usage mistake exits 2 (argparse's message); an expected failure
(a bad config, data, file or checkpoint: ``ValueError``, ``OSError``, ``KeyError``, Lightning's
``MisconfigurationException``, a broken safetensors file) prints one line ``mtlswin COMMAND: error: ...``
(or the one report a data check gathers) on stderr and exits 1, without a traceback. ``--debug`` or
the environment variable ``MTLSWIN_DEBUG=1`` lets the exception through with its traceback. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from mtlswin import __version__
from mtlswin.cli import compare, data, explain, methods, models, plan, pretrain, reproduce, synth, train, tune

_COMMAND_MODULES = (models, data, synth, train, pretrain, explain, methods, reproduce, plan, tune, compare)
# Failures of the input (config, data, files, checkpoints), not of the code; matched by name where the
# class lives in a library the CLI does not import at start (Lightning, safetensors).
_EXPECTED = (ValueError, OSError, KeyError)
_EXPECTED_NAMES = ("MisconfigurationException", "SafetensorError")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlswin",
        description="Multitask Swin Transformers for CT classification under spurious correlation.",
    )
    parser.add_argument("--version", action="version", version=f"mtlswin {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure (or set MTLSWIN_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(subparsers)
    return parser


def is_expected(err: BaseException) -> bool:
    """Whether ``err`` is a failure of the input (one line, exit 1) rather than a bug (traceback)."""
    return isinstance(err, _EXPECTED) or type(err).__name__ in _EXPECTED_NAMES


def error_message(err: BaseException) -> str:
    """The message of ``err`` as the user should read it (a ``KeyError`` without its quotes)."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("MTLSWIN_DEBUG", "").strip() not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except Exception as err:
        if _debug(args) or not is_expected(err):
            raise
        print(f"mtlswin {args.command}: error: {error_message(err)}", file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
