"""Train one config on Lightning: data module, model, callbacks, loggers, resume, export.

``train(config, resume=False) -> run_dir`` writes the run folder of docs/contracts.md:
``config.yaml`` (resolved), ``checkpoints/last.ckpt`` (every ``train.checkpoint_every_n_steps`` steps and
every epoch, for ``--resume``), ``checkpoints/best.ckpt`` (best ``train.monitor``), ``logs/`` (TensorBoard +
``metrics.csv``), ``skipped_rows.csv`` (with ``data.on_bad_row: skip``) and ``model.safetensors`` (the best
weights via ``mtlswin.models.save_model``). Checkpoints are written atomically (:mod:`.checkpoint_io`).

Several GPUs or nodes: ``--set trainer.devices=N --set trainer.num_nodes=M`` (``--set trainer.strategy=ddp``); Lightning
launches the processes itself, or picks up those of ``torchrun`` / SLURM ``srun`` from their environment
variables. The train sampler (``ResumableSampler``) shards by rank, so Lightning's own distributed sampler is
switched off; after training, ``ddp_sync.json`` records the largest weight difference between the replicas.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from mtlswin.config import Config, save_config
from mtlswin.training.checkpoint_io import AtomicCheckpointIO
from mtlswin.training.module import MTLModule, default_monitor
from mtlswin.training.quiet import quiet_lightning
from mtlswin.training.resume import ResumableTrainLoader, TrainPosition

__all__ = ["RunData", "build_datamodule", "build_model", "build_trainer", "train"]

log = logging.getLogger(__name__)


def resolve_weights_path(path: str | Path) -> Path:
    """A run folder -> its ``model.safetensors``; a file stays as it is. A ``ValueError`` if neither exists."""
    from mtlswin.models.checkpoint import resolve_checkpoint

    try:
        return resolve_checkpoint(path)
    except FileNotFoundError as err:
        raise ValueError(
            f"no weights at {str(path)!r}: give a trained run folder (with model.safetensors) or a checkpoint file"
        ) from err


def build_model(config: Config) -> torch.nn.Module:
    """``create_model(model.name, **model.options)``; ``frozen_encoder`` may name a trained swin_unet run folder."""
    from mtlswin.models import create_model

    options = dict(config.model.options)
    if options.get("frozen_encoder"):
        options["frozen_encoder"] = str(resolve_weights_path(options["frozen_encoder"]))
    elif config.model.name.startswith("joint_swin"):
        log.warning(
            "model.frozen_encoder is not set: the frozen encoder of %s stays randomly initialised", config.model.name
        )
    return create_model(config.model.name, **options)


def build_datamodule(config: Config, seed: int | None = None) -> Any:
    """``CTDataModule`` from the ``data`` section (paths as written in the config)."""
    from mtlswin.data.datamodule import CTDataModule

    d = config.data
    if not d.manifest or not d.splits:
        raise ValueError(
            "data.manifest and data.splits must be set (e.g. --set data.manifest=DIR/manifest.csv --set data.splits=DIR/splits.csv)"
        )
    for key, path in (("manifest", d.manifest), ("splits", d.splits)):
        if not Path(path).is_file():
            raise ValueError(f"data.{key}: no file {str(path)!r} (relative paths are read from {str(Path.cwd())!r})")
    return CTDataModule(
        d.manifest,
        d.splits,
        target=d.target,
        img_size=d.img_size,
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        augment=d.augment,
        window=d.window,
        cache_dir=d.cache_dir,
        cache_dtype=d.cache_dtype,
        on_bad_row=d.on_bad_row,
        seed=config.train.seed if seed is None else seed,
        eval_batch_size=d.eval_batch_size,
    )


class RunData(pl.LightningDataModule):
    """Lightning-facing view of a ``CTDataModule``: its train loader wrapped in :class:`ResumableTrainLoader`.

    The loaders are requested inside ``fit`` (after DDP has started), so the DDP-aware sampler sees the
    right rank and world size.
    """

    def __init__(self, datamodule: Any) -> None:
        super().__init__()
        self.dm = datamodule
        self.position = TrainPosition(None)

    def setup(self, stage: str | None = None) -> None:
        self.dm.setup()

    def train_dataloader(self) -> ResumableTrainLoader:
        loader = ResumableTrainLoader(self.dm.train_dataloader(), lambda: self.trainer.current_epoch)
        self.position.loader = loader
        return loader

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """Train batches per epoch on each of ``world_size`` ranks (ResumableSampler pads to equal shares)."""
        n = len(self.dm.dataset("train", augment=True))
        return math.ceil(math.ceil(n / world_size) / self.dm.batch_size)

    def val_dataloader(self) -> Any:
        return self.dm.val_dataloader()


def _callbacks(config: Config, run_dir: Path, tasks: tuple[str, ...], position: TrainPosition) -> list[pl.Callback]:
    monitor = config.train.monitor or default_monitor(tasks)
    ckpt_dir = run_dir / "checkpoints"
    # best.ckpt (best monitored value) and last.ckpt after every validation ...
    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=monitor, mode="min" if monitor.endswith("loss") else "max",
        save_top_k=1, save_last=True, auto_insert_metric_name=False, enable_version_counter=False,
    )  # fmt: skip
    callbacks: list[pl.Callback] = [position, best]
    if config.train.checkpoint_every_n_steps:  # ... and every N optimiser steps, for mid-epoch resume
        callbacks.append(ModelCheckpoint(
            dirpath=ckpt_dir, save_top_k=0, save_last=True,
            every_n_train_steps=config.train.checkpoint_every_n_steps, enable_version_counter=False,
        ))  # fmt: skip
    return callbacks


def build_trainer(config: Config, run_dir: Path, callbacks: list[pl.Callback]) -> pl.Trainer:
    """``lightning.Trainer`` from the ``trainer`` section (minus ``compile``) with our callbacks and loggers."""
    kwargs = {k: v for k, v in config.trainer.items() if k != "compile"}
    kwargs.setdefault("max_epochs", config.train.epochs)
    kwargs.setdefault("log_every_n_steps", 5)
    # ResumableSampler is DDP-aware itself: Lightning must not swap in its DistributedSampler.
    kwargs.setdefault("use_distributed_sampler", False)
    kwargs.setdefault("default_root_dir", str(run_dir))
    loggers = [
        TensorBoardLogger(save_dir=str(run_dir), name="logs", version="", default_hp_metric=False),
        CSVLogger(save_dir=str(run_dir), name="logs", version=""),
    ]
    return pl.Trainer(callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()], **kwargs)


def _export_best(module: MTLModule, run_dir: Path, best_path: str | None) -> Path:
    """``RUN/model.safetensors`` from ``best.ckpt``; the final in-memory weights when no validation ran."""
    from mtlswin.models import save_model

    if best_path and Path(best_path).is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    out = run_dir / "model.safetensors"
    save_model(module.model, out)
    return out


def _check_replicas(module: MTLModule, trainer: pl.Trainer, run_dir: Path) -> None:
    """After DDP training, in ``ddp_sync.json``: max abs difference of every rank's weights from rank 0's,
    and how many validation samples each rank evaluated (its shard of the split)."""
    device = trainer.strategy.root_device
    flat = torch.cat([p.detach().float().reshape(-1).cpu() for p in module.parameters()])
    gathered = trainer.strategy.all_gather(flat.to(device))  # world, P
    diff = (gathered - gathered[0]).abs().max().item()
    val = trainer.val_dataloaders
    n_val = torch.tensor([len(val.sampler) if val is not None else 0], device=device)
    val_per_rank = trainer.strategy.all_gather(n_val).reshape(-1).tolist()
    if trainer.is_global_zero:
        info = {"world_size": trainer.world_size, "max_abs_diff": diff, "global_step": trainer.global_step,
                "val_samples_per_rank": val_per_rank}  # fmt: skip
        (run_dir / "ddp_sync.json").write_text(json.dumps(info))


@quiet_lightning()
def train(config: Config, resume: bool = False) -> Path:
    """Train (or resume) the run of ``config``; returns the run folder (Lightning's noise silenced: :mod:`.quiet`)."""
    run_dir = config.run_dir
    last_ckpt = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last_ckpt.is_file():
        raise ValueError(f"--resume: no checkpoint at {str(last_ckpt)!r}; train without --resume first")
    if not resume and last_ckpt.is_file():
        raise ValueError(f"run folder {str(run_dir)!r} already holds a run; resume it with --resume or set output.name")
    data = RunData(build_datamodule(config))  # checks the data files first
    pl.seed_everything(config.train.seed, workers=True)
    module = MTLModule(build_model(config), config.train, config.to_dict())
    run_dir.mkdir(parents=True, exist_ok=True)  # only once data and model are known to be there
    if config.trainer.get("compile"):
        module.model.compile()  # in place: state_dict keys unchanged
    trainer = build_trainer(config, run_dir, _callbacks(config, run_dir, module.tasks, data.position))
    if trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
    old_log = _take_csv_log(run_dir) if resume and trainer.is_global_zero else None
    trainer.fit(module, datamodule=data, ckpt_path=str(last_ckpt) if resume else None)
    if old_log is not None:
        _merge_csv_log(run_dir, *old_log)
    _write_skipped(data.dm, run_dir, trainer)
    if trainer.world_size > 1:
        _check_replicas(module, trainer, run_dir)
    if trainer.is_global_zero:
        best = next(cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor)
        _export_best(module, run_dir, best.best_model_path)
    return run_dir


def _write_skipped(dm: Any, run_dir: Path, trainer: pl.Trainer) -> None:
    if trainer.is_global_zero and hasattr(dm, "write_skipped"):
        dm.write_skipped(run_dir)


def _take_csv_log(run_dir: Path) -> tuple[pd.DataFrame, int] | None:
    """Before a resume: read and remove ``logs/metrics.csv`` (Lightning's CSVLogger would delete it)."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return None
    old = pd.read_csv(path)
    step = int(torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"])
    path.unlink()
    return old, step


def _merge_csv_log(run_dir: Path, old: pd.DataFrame, resume_step: int) -> None:
    """After a resume: the old rows logged before the resumed step, then the new rows."""
    path = run_dir / "logs" / "metrics.csv"
    new = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    merged = pd.concat([old[old["step"] < resume_step], new], ignore_index=True)
    merged.to_csv(path, index=False)
