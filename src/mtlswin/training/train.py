"""Train one config on Lightning: data module, model, callbacks, loggers, resume, export.

``train(config, resume=False) -> run_dir`` writes the run folder of docs/contracts.md:
``config.yaml`` (resolved), ``checkpoints/last.ckpt`` (every ``train.checkpoint_every_n_steps`` steps and
every epoch, for ``--resume``), ``checkpoints/best.ckpt`` (best ``train.monitor``), ``logs/`` (TensorBoard +
``metrics.csv``), ``skipped_rows.csv`` (with ``data.on_bad_row: skip``) and ``model.safetensors`` (the best
weights via ``mtlswin.models.save_model``). Checkpoints are written atomically (:mod:`.checkpoint_io`).

Randomness: ``train.seed`` and ``train.rng`` (``shared`` | ``paired`` | ``independent``) give each source its seed
(:mod:`.streams`): the encoder's and the heads' initial weights, the batch order, the augmentation, drop path.

Several GPUs or nodes: ``--set trainer.devices=N --set trainer.num_nodes=M`` (``--set trainer.strategy=ddp``); Lightning
launches the processes itself, or picks up those of ``torchrun`` / SLURM ``srun`` from their environment
variables. The train sampler (``ResumableSampler``) shards by rank, so Lightning's own distributed sampler is
switched off; after training, ``ddp_sync.json`` records the largest weight difference between the replicas.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from mtlswin.config import Config, save_config
from mtlswin.data.datamodule import CTDataModule
from mtlswin.data.stats import pixel_stats
from mtlswin.io import atomic_write_text, created_dir
from mtlswin.models import create_model, save_model
from mtlswin.models.checkpoint import resolve_checkpoint
from mtlswin.models.registry import get_entry
from mtlswin.runs import DIGEST_FILE, config_digest, stored_config
from mtlswin.training.allocation import keep_freed_memory, unfilled_empty_tensors
from mtlswin.training.checkpoint_io import AtomicCheckpointIO
from mtlswin.training.cluster_env import cluster_environment
from mtlswin.training.csv_log import merge_csv_log, take_csv_log
from mtlswin.training.datamodule import TrainingData
from mtlswin.training.denormals import flushed_denormals
from mtlswin.training.module import MTLModule, default_monitor
from mtlswin.training.quiet import quiet_lightning
from mtlswin.training.resume import TrainPosition, last_checkpoint
from mtlswin.training.streams import build_with_streams, config_streams, run_streams

__all__ = ["build_datamodule", "build_model", "build_trainer", "train", "training_settings"]

log = logging.getLogger(__name__)


def resolve_weights_path(path: str | Path) -> Path:
    """A run folder -> its ``model.safetensors``; a file stays as it is. A ``ValueError`` if neither exists."""
    try:
        return resolve_checkpoint(path)
    except FileNotFoundError as err:
        raise ValueError(
            f"no weights at {str(path)!r}: give a trained run folder (with model.safetensors) or a checkpoint file"
        ) from err


def resolve_input_norm(config: Config, datamodule: CTDataModule) -> None:
    """Fill ``model.input_mean`` / ``input_std`` from ``data.normalize`` (in place; saved in config.yaml).

    ``train-stats``: the mean and std of the train split's pixels (no augmentation), deterministic, so a
    resumed run finds the same values; ``[mean, std]``: those; ``none``: the model options as they are.
    """
    norm = config.data.normalize
    if norm == "none":
        return
    if norm == "train-stats":
        mean, std = pixel_stats(datamodule.dataset("train", augment=False))
        log.info("input standardisation from the train split: mean %.4f, std %.4f", mean, std)
    else:
        mean, std = float(norm[0]), float(norm[1])
    config.model.options["input_mean"], config.model.options["input_std"] = round(mean, 6), round(std, 6)


def build_model(config: Config) -> torch.nn.Module:
    """``create_model(model.name, **model.options)``; ``frozen_encoder`` may name a trained swin_unet run folder."""
    options = dict(config.model.options)
    if options.get("frozen_encoder"):
        options["frozen_encoder"] = str(resolve_weights_path(options["frozen_encoder"]))
    elif get_entry(config.model.name).capabilities.frozen_encoder:
        log.warning(
            "model.frozen_encoder is not set: the frozen part (a trained Swin-Unet's encoder or segmenter) of %s "
            "stays randomly initialised",
            config.model.name,
        )
    return create_model(config.model.name, **options)


def build_datamodule(config: Config, seed: int | None = None) -> TrainingData:
    """The run's data module (a ``CTDataModule`` with a resumable train loader) from the ``data`` section
    (paths as written in the config); batch order and augmentation from the run's streams
    (:func:`.streams.config_streams`), or all from ``seed`` when given."""
    d = config.data
    if not d.manifest or not d.splits:
        raise ValueError(
            "data.manifest and data.splits must be set (e.g. --set data.manifest=DIR/manifest.csv --set data.splits=DIR/splits.csv)"
        )
    for key, path in (("manifest", d.manifest), ("splits", d.splits)):
        if not Path(path).is_file():
            raise ValueError(f"data.{key}: no file {str(path)!r} (relative paths are read from {str(Path.cwd())!r})")
    streams = config_streams(config) if seed is None else run_streams(seed)
    return TrainingData(
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
        device_cache=d.device_cache,
        on_bad_row=d.on_bad_row,
        mask_fraction=d.mask_fraction,
        seed=config.train.seed if seed is None else seed,
        eval_batch_size=d.eval_batch_size,
        order_seed=streams.order,
        augment_seed=streams.augment,
    )


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
    return pl.Trainer(
        callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO(), cluster_environment()], **kwargs
    )


def _export_best(module: MTLModule, run_dir: Path, best_path: str | None) -> Path:
    """``RUN/model.safetensors`` from ``best.ckpt``; the final in-memory weights when no validation ran."""
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
        atomic_write_text(run_dir / "ddp_sync.json", json.dumps(info))


@contextmanager
def training_settings() -> Iterator[None]:
    """What a run's steps run under, none of which changes a number: subnormals flushed (slow on a CPU:
    .denormals), freed memory kept by glibc and new tensors not NaN-filled under deterministic mode
    (.allocation). Used by :func:`train` and by the benchmarks that time its steps."""
    keep_freed_memory()
    with flushed_denormals(), unfilled_empty_tensors():
        yield


@quiet_lightning()
def train(config: Config, resume: bool = False) -> Path:
    """Train (or resume) the run of ``config``; returns the run folder (Lightning's noise silenced: :mod:`.quiet`)."""
    run_dir = config.run_dir
    last_ckpt = last_checkpoint(run_dir, resume)
    data = build_datamodule(config)  # checks the data files first
    streams = config_streams(config)
    pl.seed_everything(streams.train, workers=True)  # shared: train.seed (every stream is train.seed)
    # A fresh run that fails before its first checkpoint removes the folder it created (none is left half-made);
    # once last.ckpt exists the folder stays, to be resumed.
    with created_dir(run_dir, keep=last_ckpt.is_file), training_settings():
        digest = config_digest(config)  # of the config as asked for: what `reproduce` compares before training
        resolve_input_norm(config, data)
        stored = stored_config(config)
        model = build_with_streams(lambda: build_model(config), streams)  # shared: on the generator seeded above
        module = MTLModule(model, config.train, stored.to_dict(), step_seed=streams.train)
        module.compile_training_forward(config.trainer.get("compile"))
        trainer = build_trainer(config, run_dir, _callbacks(config, run_dir, module.tasks, data.position))
        if trainer.is_global_zero:
            save_config(stored, run_dir / "config.yaml")
            atomic_write_text(run_dir / DIGEST_FILE, digest + "\n")
        old_log = take_csv_log(run_dir) if resume and trainer.is_global_zero else None
        trainer.fit(module, datamodule=data, ckpt_path=str(last_ckpt) if resume else None)
        if old_log is not None:
            merge_csv_log(run_dir, *old_log)
        if trainer.is_global_zero:
            data.write_skipped(run_dir)
        if trainer.world_size > 1:
            _check_replicas(module, trainer, run_dir)
        if trainer.is_global_zero:
            best = next(cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor)
            _export_best(module, run_dir, best.best_model_path)
    return run_dir
