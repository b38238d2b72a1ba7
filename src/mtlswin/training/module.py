"""The LightningModule: one model of the registry, its multitask loss, optimiser + schedule, validation metrics.

Logged (TensorBoard + CSV): ``train/loss`` and ``train/<task>`` per step and epoch, ``train/lr``;
``val/loss``, ``val/<task>``, and per epoch ``val/auc``, ``val/acc``, ``val/f1_macro``, ``val/f1_pos``
(classification models) and ``val/iou`` (hematoma class, models with a segmentation head).
``train/seg`` and ``val/seg`` are weighted by the number of slices with a mask (a train step without
any mask logs no ``train/seg``), so slices without masks do not pull the segmentation loss towards 0.

Training options of any classifier row (docs/methods.md), built from the config by :func:`build_guidance` and
:func:`build_objective` through the method registry (:mod:`mtlswin.methods`), which knows no method by name here:
guidance terms (``train.guidance``: RRR, CAM alignment) are added to the TRAINING loss only, each logged as
``train/<name>`` (unweighted; ``train/loss`` includes ``lambda * term``); the objective (``train.objective``:
GroupDRO) replaces the mean of the per-sample classification loss inside :class:`MultitaskLoss`, and its state
is logged too (``train/groupdro_q_<label>_<cue>``).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from mtlswin.config import TrainConfig
from mtlswin.methods import build_method
from mtlswin.training.losses import MultitaskLoss
from mtlswin.training.schedule import build_optimizer, build_scheduler

__all__ = ["MTLModule", "build_guidance", "build_objective", "default_monitor"]


def _needs_classifier(option: str, model: nn.Module) -> None:
    if "cls" not in tuple(model.tasks):
        raise ValueError(f"{option} needs a classification model (a 'cls' task); this model has {tuple(model.tasks)}")


def build_guidance(train: TrainConfig, model: nn.Module) -> list[Any]:
    """The guidance terms of ``train.guidance`` (empty for none), each with ``.name``, ``.weight``,
    ``prepare(model, batch) -> batch`` (before the forward) and ``__call__(model, batch, outputs) -> {name: term}``."""
    if train.guidance is None:
        return []
    _needs_classifier(f"train.guidance {train.guidance.name!r}", model)
    return [build_method(train.guidance, model)]


def build_objective(train: TrainConfig, model: nn.Module) -> nn.Module | None:
    """The ``cls_reduction`` of ``train.objective`` (None for erm: the plain mean)."""
    if train.objective is None:
        return None
    _needs_classifier(f"train.objective {train.objective.name!r}", model)
    return build_method(train.objective, model)


def default_monitor(tasks: tuple[str, ...]) -> str:
    """``val/auc`` for models with a classification output, ``val/iou`` for segmentation-only models."""
    return "val/auc" if "cls" in tasks else "val/iou"


class MTLModule(pl.LightningModule):
    """Trains ``model`` (a registry model, outputs dict ``logits``/``seg``/``rec``) with the paper's recipe.

    Args:
        model: the network; ``model.tasks`` says which outputs it has.
        train: the ``train`` config section (:class:`mtlswin.config.TrainConfig`: lr, momentum,
            weight_decay, poly_power, loss_weights, uncertainty_weighting, seed, threshold); its
            defaults are the only ones.
        run_config: the whole resolved config (``Config.to_dict()``), saved as ``checkpoint["mtlswin_config"]``.
        step_seed: what the global generator is reseeded from at every step (with the step and the rank);
            ``train.seed`` when None, the run's ``train`` stream under ``train.rng`` paired / independent.
    """

    def __init__(
        self,
        model: nn.Module,
        train: TrainConfig,
        run_config: dict[str, Any] | None = None,
        step_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.run_config = run_config  # stored in every checkpoint, so a .ckpt alone rebuilds the model
        self.train_cfg = train
        # the seed of the per-step reseeding (drop path): train.seed, or the run's "train" stream (train.rng)
        self.step_seed = train.seed if step_seed is None else int(step_seed)
        self.tasks = tuple(model.tasks)
        self.loss_fn = MultitaskLoss(
            self.tasks, train.loss_weights, train.uncertainty_weighting, cls_reduction=build_objective(train, model)
        )
        self.guidance = build_guidance(train, model)  # plain list: the terms hold no weights of their own
        self.val_cls = MetricCollection(
            {
                "auc": BinaryAUROC(),
                "acc": BinaryAccuracy(threshold=train.threshold),
                "f1_pos": BinaryF1Score(threshold=train.threshold),
            }
        )
        self.val_f1_macro = MulticlassF1Score(num_classes=2, average="macro")
        self.val_iou = MulticlassJaccardIndex(num_classes=2, average="none")
        # (compiled forward, the batch shape it serves): set by compile_training_forward; a tuple, so the
        # compiled wrapper is not registered as a submodule and the state-dict keys stay those of the model
        self._compiled: tuple[Any, torch.Size | None] | None = None

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.model(image)

    def compile_training_forward(self, option: bool | str | None = True) -> None:
        """Run the model's TRAINING forward through ``torch.compile``: ``option`` is ``trainer.compile``, ``True``
        for inductor or the name of another backend (e.g. ``"aot_eager"``); a false or empty value leaves the
        model eager.

        Only full training batches go through it: the graph is compiled once, for the shape of the first
        training batch (``dynamic=False``); a smaller batch (an epoch's last) and validation run eagerly, so
        nothing compiles twice and validation costs no compilation. The loss stays eager (its masked mean has a
        data-dependent shape). Inductor keeps its compiled code on disk (``TORCHINDUCTOR_CACHE_DIR``), so every
        seed and later run of the same model shape starts from the cache. If compiling fails (e.g. no C++
        compiler for inductor), the run warns once and goes on eagerly.
        """
        if not option:
            return
        backend = {"backend": option} if isinstance(option, str) else {}
        compiled = torch.compile(self.model, dynamic=False, **backend)
        self._compiled = (compiled, None)

    def _train_forward(self, image: Tensor) -> dict[str, Tensor]:
        if self._compiled is None:
            return self.model(image)
        compiled, shape = self._compiled
        if shape is not None:
            return compiled(image) if image.shape == shape else self.model(image)
        try:  # the first call compiles
            outputs = compiled(image)
        except Exception as err:  # any backend failure (no C++ compiler, an op it lacks): go on eagerly
            rank_zero_warn(
                f"trainer.compile: compiling the training forward failed, training eagerly instead ({err!r})"
            )
            self._compiled = None
            return self.model(image)
        self._compiled = (compiled, image.shape)
        return outputs

    def _step(self, batch: dict[str, Any], stage: str) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.guidance if stage == "train" else ()  # validation is plain
        for term in terms:
            batch = term.prepare(self.model, batch)
        outputs = self._train_forward(batch["image"]) if stage == "train" else self.model(batch["image"])
        total, parts = self.loss_fn(outputs, batch)
        guided: dict[str, Tensor] = {}
        for term in terms:
            for name, value in term(self.model, batch, outputs).items():
                total = total + term.weight * value
                guided[name] = value
        bs = batch["image"].shape[0]
        on_step = stage == "train"
        self.log(
            f"{stage}/loss", total, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=not on_step
        )
        for task, value in parts.items():
            # seg: a mean over the slices with a mask, so weighted by their number. A train step without
            # any logs nothing; a validation step logs weight 0 (synced: every rank must log the same keys).
            n = int(batch["has_mask"].sum()) if task == "seg" else bs
            if n == 0 and on_step:
                continue
            self.log(f"{stage}/{task}", value, on_step=on_step, on_epoch=True, batch_size=n, sync_dist=not on_step)
        for name, value in guided.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=True, batch_size=bs)
        return total, outputs

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Reseed the global RNG per optimiser step: stochastic layers (drop path) then depend only on
        # (seed, step, rank), so a run resumed mid-epoch draws exactly what the uninterrupted run drew.
        seed = self.step_seed * 1_000_003 + self.global_step * 1009 + self.global_rank
        torch.manual_seed(seed)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        total, _ = self._step(batch, "train")
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        if self.loss_fn.log_vars is not None:
            for i, task in enumerate(self.tasks):
                self.log(f"train/log_var_{task}", self.loss_fn.log_vars[i].detach(), on_step=False, on_epoch=True)
        for name, value in self.loss_fn.extra_logs().items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False)
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, outputs = self._step(batch, "val")
        if "logits" in outputs:
            prob = outputs["logits"].float().softmax(dim=1)[:, 1]
            self.val_cls.update(prob, batch["label"])
            pred = (prob >= self.train_cfg.threshold).long()
            self.val_f1_macro.update(pred, batch["label"])
        if "seg" in outputs:
            sel = batch["has_mask"].bool()  # IoU only on slices that have a mask
            self.val_iou.update(outputs["seg"][sel].argmax(dim=1), batch["mask"][sel])

    def on_validation_epoch_end(self) -> None:
        if "cls" in self.tasks:
            values = self.val_cls.compute()
            for name, value in values.items():
                self.log(f"val/{name}", value, prog_bar=name == "auc")
            self.log("val/f1_macro", self.val_f1_macro.compute())
            self.val_cls.reset()
            self.val_f1_macro.reset()
        if "seg" in self.tasks:
            # IoU of the hematoma class over all masked validation slices (0 when there is none).
            self.log("val/iou", self.val_iou.compute()[1], prog_bar="cls" not in self.tasks)
            self.val_iou.reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["mtlswin_config"] = self.run_config

    def _max_iter(self) -> int:
        """Optimiser steps of the whole run. Not ``trainer.estimated_stepping_batches``: that loads the train
        loader before a checkpoint is restored, and Lightning then never restores the loader's mid-epoch state."""
        trainer = self.trainer
        per_epoch_fn = getattr(trainer.datamodule, "batches_per_epoch", None)
        if per_epoch_fn is None:
            return int(trainer.estimated_stepping_batches)
        batches = per_epoch_fn(trainer.world_size)
        limit = trainer.limit_train_batches
        batches = min(batches, int(limit)) if isinstance(limit, int) else int(batches * float(limit))
        steps = math.ceil(batches / trainer.accumulate_grad_batches) * int(trainer.max_epochs or 1)
        if trainer.max_steps is not None and trainer.max_steps > 0:
            steps = min(steps, trainer.max_steps) if trainer.max_epochs not in (None, -1) else trainer.max_steps
        return max(1, steps)

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.train_cfg
        trainable = nn.ModuleDict({"model": self.model, "loss": self.loss_fn})  # uncertainty weights included
        optimizer = build_optimizer(trainable, cfg.lr, cfg.momentum, cfg.weight_decay, name=cfg.optimizer)
        scheduler = build_scheduler(
            optimizer, self._max_iter(), schedule=cfg.schedule, power=cfg.poly_power, warmup=cfg.warmup_steps
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
