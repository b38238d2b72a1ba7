"""Test helper: ``mtlswin train`` that stops (sleeps) at a given optimiser step, to be SIGKILLed there.

Usage: ``python stall_train.py STEP MARKER mtlswin-train-args...``. When ``trainer.global_step == STEP`` at the
start of a batch (the checkpoint of step STEP is on disk), it writes MARKER and sleeps until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightning.pytorch as pl

import mtlswin.training.train as train_mod
from mtlswin.cli import main


class Stall(pl.Callback):
    def __init__(self, step: int, marker: Path) -> None:
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self.marker.write_text(f"{trainer.current_epoch} {batch_idx}")
            time.sleep(600)


if __name__ == "__main__":
    step, marker = int(sys.argv[1]), Path(sys.argv[2])
    build = train_mod._callbacks
    train_mod._callbacks = lambda *args: [*build(*args), Stall(step, marker)]
    sys.exit(main(["train", *sys.argv[3:]]))
