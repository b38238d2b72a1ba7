"""Sub-commands of `mtlswin` (placeholder, filled by the issue that owns them)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this module's sub-commands to ``subparsers``."""
