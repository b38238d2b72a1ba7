"""Exact mid-epoch resume: the train loader remembers how far into an epoch the run got.

Lightning restores model, optimiser, LR scheduler and loop counters from ``last.ckpt``, and restores the
state of a train loader that has ``state_dict``/``load_state_dict`` (it calls ``load_state_dict`` just before
it creates the epoch's iterator). :class:`ResumableTrainLoader` uses that hook: its state is (epoch, batches
done in the epoch); on load it asks the data module's ``ResumableSampler`` to start the epoch's order at
``batches_done * batch_size`` (``set_epoch`` + ``set_start``), so the resumed run sees exactly the batches
the uninterrupted run would have seen. Lightning has no such sampler hook, hence this small wrapper.

The wrapper reports the FULL epoch length (Lightning counts the resumed epoch's batches from the restored
position up to that length). Distributed runs use the plain loader (Lightning injects its distributed
sampler); they resume at the right step and LR but replay the interrupted epoch's order from its start.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

__all__ = ["ResumableTrainLoader", "TrainPosition", "last_checkpoint", "rng_states", "set_rng_states"]


def last_checkpoint(run_dir: Path, resume: bool) -> Path:
    """``RUN/checkpoints/last.ckpt``, after checking it agrees with ``resume`` (``train`` and ``pretrain``):
    ``--resume`` needs it, a fresh run must not find one (it would overwrite a run)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise ValueError(f"--resume: no checkpoint at {str(last)!r}; run without --resume first")
    if not resume and last.is_file():
        raise ValueError(f"run folder {str(run_dir)!r} already holds a run; resume it with --resume or set output.name")
    return last


def _sampler_of(loader: DataLoader) -> Any:
    sampler = loader.sampler
    if not hasattr(sampler, "set_start") and loader.batch_sampler is not None:
        sampler = getattr(loader.batch_sampler, "sampler", sampler)
    return sampler


class ResumableTrainLoader:
    """An iterable over ``loader`` whose state is the position within the current epoch.

    Each ``iter()`` is one epoch (``current_epoch()``, the trainer's counter): it calls ``sampler.set_epoch(epoch)``
    and ``sampler.set_start(start)`` (``start`` = samples already seen in that epoch, non-zero only right after
    a resume, when epoch and start come from the loaded state).
    """

    def __init__(self, loader: DataLoader, current_epoch: Callable[[], int] | None = None) -> None:
        self.loader = loader
        self.current_epoch = current_epoch or (lambda: 0)  # the trainer's epoch counter
        self.sampler = _sampler_of(loader)
        if not (hasattr(self.sampler, "set_start") and hasattr(self.sampler, "set_epoch")):
            raise ValueError(
                f"the train loader's sampler {type(self.sampler).__name__} has no set_epoch/set_start; "
                "use mtlswin.data.sampler.ResumableSampler for exact mid-epoch resume"
            )
        self.batch_size = int(loader.batch_size or 1)
        self.num_batches = len(loader)  # full epoch length, before any set_start
        self.resume_at: tuple[int, int] | None = None  # (epoch, batches to skip) after load_state_dict
        self.batches_done = 0  # batches finished in the running epoch (set by TrainPosition)
        self.running_epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[Any]:
        epoch, skip = self.resume_at if self.resume_at is not None else (int(self.current_epoch()), 0)
        self.resume_at = None
        self.running_epoch, self.batches_done = epoch, skip
        self.sampler.set_epoch(epoch)
        self.sampler.set_start(skip * self.batch_size)
        return iter(self.loader)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.running_epoch, "batches_done": self.batches_done, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state.get("batch_size", self.batch_size)) != self.batch_size:
            raise ValueError(
                f"cannot resume mid-epoch with batch size {self.batch_size}: the checkpoint used "
                f"{state['batch_size']}; resume with data.batch_size={state['batch_size']}"
            )
        epoch, done = int(state["epoch"]), int(state["batches_done"])
        if done >= self.num_batches:  # saved at the end of an epoch: start the next one
            epoch, done = epoch + 1, 0
        self.resume_at = (epoch, done)


def rng_states() -> dict[str, Any]:
    """The global RNG states (python, numpy, torch CPU and CUDA)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002  (the legacy global RNG is what we save)
    # numpy's state as tensors and numbers, so the checkpoint loads with torch.load(weights_only=True)
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "gauss": float(gauss)}  # fmt: skip
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class TrainPosition(pl.Callback):
    """Keeps ``loader.batches_done`` up to date and stores/restores the RNG states with the checkpoint."""

    def __init__(self, loader: ResumableTrainLoader | None) -> None:
        self.loader = loader

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Runs before ModelCheckpoint (Lightning orders checkpoint callbacks last), so a checkpoint saved
        # at this step records this batch as done.
        if self.loader is not None:
            self.loader.batches_done = batch_idx + 1

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            set_rng_states(state_dict["rng"])
