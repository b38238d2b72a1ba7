"""Stages of ``reproduce``: each runs only when its output is not there and valid, and prints one line."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Progress"]


@dataclass
class Progress:
    """Prints one line per stage: ``[k] stage ... done in 12.3 s`` or ``... skipped (valid output exists)``."""

    log: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str, done: Callable[[], bool], action: Callable[[], object]) -> None:
        k = len(self.timings) + 1
        if done():
            self.log(f"[{k}] {name}: skipped (valid output exists)")
            self.timings[name] = 0.0
            return
        self.log(f"[{k}] {name}: running")
        start = time.perf_counter()
        action()
        self.timings[name] = time.perf_counter() - start
        if not done():
            raise RuntimeError(f"stage {name!r} finished but its output is not valid; see the messages above")
        self.log(f"[{k}] {name}: done in {self.timings[name]:.1f} s")
