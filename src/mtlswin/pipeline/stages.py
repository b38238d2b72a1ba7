"""Stages of ``reproduce``: each runs only when its output is not there and valid, and prints one line."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

__all__ = ["Progress", "time_table"]


@dataclass
class Progress:
    """Prints one line per stage: ``[k] stage ... done in 12.3 s`` or ``... skipped (valid output exists)``."""

    log: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)  # stages whose output was already there (timed 0.0)

    def stage(self, name: str, done: Callable[[], bool], action: Callable[[], object]) -> None:
        k = len(self.timings) + 1
        if done():
            self.log(f"[{k}] {name}: skipped (valid output exists)")
            self.timings[name] = 0.0
            self.skipped.add(name)
            return
        self.log(f"[{k}] {name}: running")
        start = time.perf_counter()
        action()
        self.timings[name] = time.perf_counter() - start
        if not done():
            raise RuntimeError(f"stage {name!r} finished but its output is not valid; see the messages above")
        self.log(f"[{k}] {name}: done in {self.timings[name]:.1f} s")


def time_table(timings: Mapping[str, float], skipped: Collection[str] = ()) -> str:
    """The reports' "Time per stage" section (Markdown): seconds per stage and the total. A stage this run found
    done (``skipped``) reads "skipped (its output existed)" rather than a time of 0.0 s it did not take."""
    rows = [f"| {k} | {'skipped (its output existed)' if k in skipped else f'{v:.1f}'} |" for k, v in timings.items()]
    total = f"| total | {sum(timings.values()):.1f} |"
    return "\n".join(["## Time per stage", "", "| stage | seconds |", "|---|---|", *rows, total]) + "\n"
