"""``pretrain(config, resume=False) -> run_dir``: SimMIM pretraining of a Swin encoder on unlabeled slices.

The run folder::

    RUN/config.yaml                  resolved config (input standardisation filled in)
    RUN/checkpoints/last.ckpt        every pretrain.checkpoint_every_n_steps steps and every epoch (--resume)
    RUN/logs/metrics.csv             train/loss (masked-pixel L1) and lr per logged step (CSVLogger)
    RUN/encoder.safetensors          the encoder: SwinEncoder state dict + sizes + input_mean/std in its metadata
    RUN/skipped.csv                  unreadable inputs (a line each on stderr too)

Inputs (``data.inputs``): manifest CSVs (only the ``image`` column is read, relative to the manifest's
folder; labels and masks are ignored), folders, image files, NIfTI volumes (every slice) and DICOM series
folders (every slice), expanded by :func:`mtlswin.data.volumes.expand_slices`. Every slice is read once
before training: unreadable ones are skipped, and ``data.normalize: corpus-stats`` (the default) takes
the pixel mean and std of the resized [0, 1] slices. Those become the encoder's ``input_mean`` /
``input_std`` (standardisation inside the model, as ``data.normalize: train-stats`` does for ``train``)
and are stored in ``encoder.safetensors``; a model initialised from it with another standardisation
gets a warning naming ``data.normalize: [mean, std]``.

Determinism: the slice order is :class:`~mtlswin.data.sampler.ResumableSampler`'s (seed, epoch) and
each step's masks are drawn from a generator seeded with ``(seed, global_step)``, so a resumed run
(Lightning restores weights, optimiser, schedule and loop; :mod:`mtlswin.training.resume` the position
in the epoch) takes the same steps as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset

from mtlswin.data.inputs import SkipLog
from mtlswin.data.readers import load_slice
from mtlswin.data.sampler import ResumableSampler
from mtlswin.data.transforms import resize_image
from mtlswin.data.volumes import SliceInput, expand_slices
from mtlswin.io import created_dir
from mtlswin.models.checkpoint import ENCODER_NAME, save_encoder
from mtlswin.models.encoder import SwinEncoder
from mtlswin.models.factory import build_config
from mtlswin.pretrain.config import PretrainConfig, pretrain_config_from_dict, save_pretrain_config
from mtlswin.pretrain.simmim import SimMIM, default_mask_patch, random_mask
from mtlswin.training.checkpoint_io import AtomicCheckpointIO
from mtlswin.training.csv_log import merge_csv_log, take_csv_log
from mtlswin.training.quiet import quiet_lightning
from mtlswin.training.resume import ResumableTrainLoader, TrainPosition, last_checkpoint

__all__ = ["SimMIMModule", "UnlabeledSlices", "list_pretrain_slices", "pretrain"]

log = logging.getLogger(__name__)


def list_pretrain_slices(inputs: list[str | Path], skipped: SkipLog) -> list[SliceInput]:
    """Every slice of ``inputs``: manifest CSVs (their ``image`` column) and files / folders / volumes / series."""
    items: list[str | Path] = []
    for item in inputs:
        path = Path(item)
        if path.suffix.lower() == ".csv" and path.is_file():
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            if "image" not in table.columns:
                raise ValueError(f"{path}: a manifest needs an 'image' column (found {list(table.columns)})")
            items += [str(path.parent / image) for image in table["image"] if image]
        else:
            items.append(item)
    return expand_slices(items, skipped)


class UnlabeledSlices(Dataset):
    """``dataset[i]`` -> the i-th slice as ``(1, img_size, img_size)`` float32 in [0, 1]."""

    def __init__(self, slices: list[SliceInput], window, img_size: int) -> None:
        self.slices, self.window, self.img_size = list(slices), window, int(img_size)

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = resize_image(load_slice(self.slices[i].path, self.window), self.img_size)
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]


def readable_corpus(dataset: UnlabeledSlices, skipped: SkipLog) -> tuple[UnlabeledSlices, float, float]:
    """Read every slice once: drop (and log) the unreadable ones; the pixel mean and std of the rest."""
    keep, total, total_sq, count = [], 0.0, 0.0, 0
    for i, item in enumerate(dataset.slices):
        try:
            image = dataset[i].double()
        except Exception as err:  # any reader error: pydicom, PIL, numpy, nibabel
            skipped.skip(item.path, f"{type(err).__name__}: {err}")
            continue
        keep.append(item)
        total, total_sq, count = total + image.sum().item(), total_sq + (image**2).sum().item(), count + image.numel()
    if not keep:
        raise ValueError("none of the pretraining inputs could be read; give DICOM, PNG, .npy or NIfTI files/folders")
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean**2, 1e-12))
    return UnlabeledSlices(keep, dataset.window, dataset.img_size), mean, std


class SimMIMModule(pl.LightningModule):
    """The Lightning loop of :class:`SimMIM`: masked-pixel L1, AdamW, linear warm-up + cosine per step."""

    def __init__(self, model: SimMIM, config: PretrainConfig, total_steps: int) -> None:
        super().__init__()
        self.model, self.cfg, self.total_steps = model, config.pretrain, max(1, int(total_steps))
        self.save_hyperparameters({"config": config.to_dict(), "total_steps": self.total_steps})

    def step_mask(self, batch: int) -> torch.Tensor:
        """This step's masks, from ``(seed, global_step)``: the same after a resume."""
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + int(self.global_step))
        return random_mask(batch, self.model.mask_side, self.cfg.mask_ratio, gen)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss, _ = self.model(batch, self.step_mask(batch.shape[0]).to(batch.device))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch.shape[0])
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and n != "mask_token"]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim < 2 or n == "mask_token"]
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr)
        warm, total, floor = self.cfg.warmup_steps, self.total_steps, self.cfg.min_lr_ratio

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _encoder_config(config: PretrainConfig, mean: float, std: float) -> tuple[dict, int]:
    options = {k: v for k, v in config.model.options.items() if k not in ("pretrained", "frozen_encoder")}
    options.update(input_mean=round(mean, 6), input_std=round(std, 6))
    model_config = build_config(config.model.name, **options)
    img_size = config.data.img_size or model_config.img_size
    return {**model_config.encoder_kwargs(), **model_config.input_kwargs(), "img_size": img_size}, img_size


def _standardisation(config: PretrainConfig, mean: float, std: float) -> tuple[float, float]:
    norm = config.data.normalize
    if norm == "corpus-stats":
        return mean, std
    if norm == "none":
        return float(config.model.options.get("input_mean", 0.0)), float(config.model.options.get("input_std", 1.0))
    return float(norm[0]), float(norm[1])


def _trainer(config: PretrainConfig, run_dir: Path, position: TrainPosition) -> pl.Trainer:
    every = config.pretrain.checkpoint_every_n_steps
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_top_k=0, save_last=True,
                           every_n_train_steps=every or None, enable_version_counter=False)  # fmt: skip
    kwargs = {"max_epochs": config.pretrain.epochs, "log_every_n_steps": 1, "use_distributed_sampler": False,
              "default_root_dir": str(run_dir), "enable_model_summary": False, **config.trainer}  # fmt: skip
    return pl.Trainer(callbacks=[position, ckpt], plugins=[AtomicCheckpointIO()],
                      logger=CSVLogger(save_dir=str(run_dir), name="logs", version=""), **kwargs)  # fmt: skip


@quiet_lightning()
def pretrain(config: PretrainConfig, resume: bool = False) -> Path:
    """Pretrain (or resume) the encoder of ``config``; returns the run folder (see the module docstring)."""
    run_dir = config.run_dir
    last = last_checkpoint(run_dir, resume)
    if not config.data.inputs:
        raise ValueError("data.inputs is empty: give manifest CSVs, folders or files (--set data.inputs=[DIR])")
    skipped = SkipLog()
    slices = list_pretrain_slices(config.data.inputs, skipped)
    _, img_size = _encoder_config(config, 0.0, 1.0)
    corpus, c_mean, c_std = readable_corpus(UnlabeledSlices(slices, config.data.window, img_size), skipped)
    mean, std = _standardisation(config, c_mean, c_std)
    enc_config, _ = _encoder_config(config, mean, std)
    log.info("pretraining on %d slices; corpus mean %.4f, std %.4f", len(corpus), c_mean, c_std)
    pl.seed_everything(config.pretrain.seed, workers=True)
    with created_dir(run_dir, keep=last.is_file):
        encoder = SwinEncoder(**enc_config)
        p = config.pretrain
        model = SimMIM(encoder, default_mask_patch(p.mask_patch_size, encoder.patch_size, encoder.depths))
        sampler = ResumableSampler(len(corpus), seed=p.seed, shuffle=True)
        base = DataLoader(corpus, batch_size=config.data.batch_size, sampler=sampler,
                          num_workers=config.data.num_workers)  # fmt: skip
        position = TrainPosition(None)
        trainer = _trainer(config, run_dir, position)
        loader = ResumableTrainLoader(base, lambda: trainer.current_epoch)
        position.loader = loader
        # The schedule's length comes from pretrain.epochs alone: a run stopped early (trainer.max_steps) and
        # resumed follows the same learning rates as an uninterrupted one.
        module = SimMIMModule(model, config, len(loader) * p.epochs)
        resolved = config.to_dict()
        resolved["model"].update(input_mean=enc_config["input_mean"], input_std=enc_config["input_std"])
        save_pretrain_config(_with(config, resolved), run_dir / "config.yaml")
        old_log = take_csv_log(run_dir) if resume else None
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(last) if resume else None)
        if old_log is not None:
            merge_csv_log(run_dir, *old_log)
        skipped.write(run_dir)
        info = {"method": "SimMIM", "mask_ratio": p.mask_ratio, "mask_patch_size": model.mask_patch,
                "steps": int(trainer.global_step), "epochs": p.epochs, "slices": len(corpus),
                "corpus": [str(x) for x in config.data.inputs], "corpus_mean": c_mean, "corpus_std": c_std,
                "model": config.model.name}  # fmt: skip
        save_encoder(model.encoder, run_dir / ENCODER_NAME, enc_config, info)
    return run_dir


def _with(config: PretrainConfig, resolved: dict) -> PretrainConfig:
    return pretrain_config_from_dict(resolved, name=config.output.name)
