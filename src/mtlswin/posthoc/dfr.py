"""Deep Feature Reweighting (Kirichenko, Izmailov & Wilson, ICLR 2023): refit only the last layer on balanced groups.

A classifier trained under a spurious correlation often still *represents* the core feature; its last
layer merely weighs the shortcut more. DFR keeps the features ``f(x)`` (the head's input: GAP of the
normalised bottleneck) and refits the linear head on held-out data where the shortcut does not pay:

    groups    g = (label, cue)                        # from the manifest's `cue` column, on the val split
    z         = (f - mean) / std                      # standardised on the whole held-out split
    for s in 1..S (S = 10):                           # as in the paper: several balanced subsamples
        D_s = each group subsampled to the smallest group's size (without replacement)
        (w_s, b_s) = argmin_{w,b}  sum_{i in D_s} log(1 + exp(-y_i (w.z_i + b))) + ||w||_1 / C
    w, b = mean_s w_s, mean_s b_s                      # the averaged logistic-regression weights
    head:  logit_1 - logit_0 = w.z + b                # written as Linear(C_feat, 2): row 0 = 0, row 1 = w / std

``C`` (inverse L1 strength): given, or chosen from ``C_GRID`` (the paper's grid) by the worst-group accuracy
on one half of the held-out patients after fitting on the other half (patients never straddle the halves),
then the final head is refit on the whole held-out split with that ``C``. The worst-group accuracy "after"
in ``dfr.json`` is measured on the data the head was fitted on (in-sample); judge the method on the test
splits with ``mtlswin evaluate OUT``.

:func:`extract_features` (also used by :mod:`mtlswin.posthoc.cue_probe`) computes the frozen features.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from mtlswin.config import save_config
from mtlswin.io import atomic_write_text, created_dir
from mtlswin.methods.registry import register_method
from mtlswin.models import save_model
from mtlswin.models.registry import models_with
from mtlswin.runs import Run, stored_config

__all__ = [
    "C_GRID",
    "DFRSettings",
    "Features",
    "LinearFit",
    "balanced_subsample",
    "dfr_fit",
    "dfr_run",
    "extract_features",
    "pooled_features",
    "worst_group_accuracy",
]

log = logging.getLogger(__name__)
C_GRID = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # the paper's grid of inverse L1 strengths


@dataclass
class Features:
    """Frozen head inputs of one split, row-aligned with the split's samples."""

    features: np.ndarray  # N, C float64
    label: np.ndarray  # N int
    cue: np.ndarray | None  # N int (-1 = empty cell); None when the manifest has no cue column
    patient_id: np.ndarray  # N str
    index: np.ndarray  # N: 0-based manifest rows


@dataclass
class LinearFit:
    """A binary linear head on standardised features: ``decision = ((f - mean) / scale) . coef + intercept``."""

    coef: np.ndarray  # C
    intercept: float
    mean: np.ndarray  # C
    scale: np.ndarray  # C
    info: dict[str, Any] = field(default_factory=dict)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept

    def raw(self) -> tuple[np.ndarray, float]:
        """``(w, b)`` acting on the raw features: ``decision = f . w + b``."""
        w = self.coef / self.scale
        return w, float(self.intercept - self.mean @ w)


def _check_model(model: nn.Module) -> str:
    name = getattr(model, "model_name", type(model).__name__)
    supported = models_with("linear_head")  # GAP + one Linear head on the bottleneck
    if name not in supported or not isinstance(getattr(model, "head", None), nn.Linear):
        raise ValueError(
            f"DFR and the cue probe need a classifier whose head is one Linear on pooled Swin features "
            f"({', '.join(supported)}); this run's model is {name!r}"
        )
    return name


def pooled_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of ``model.head``, ``(B, C)``: GAP of the normalised bottleneck (of the gated image for seg_gated)."""
    if callable(getattr(model, "pooled_features", None)):
        return model.pooled_features(x)
    return model.encoder(x).bottleneck.mean(dim=(1, 2))  # B, C


@torch.no_grad()
def extract_features(run: Any, split: str, batch_size: int | None = None, device: str = "cpu") -> Features:
    """Frozen pooled features of the opened ``run`` (:class:`mtlswin.runs.Run`) on ``split`` (no augmentation)."""
    model = run.model.eval().to(device)
    _check_model(model)
    if run.config is None:
        raise ValueError(f"{run.name!r} has no config.yaml: open a run folder (its data settings are needed)")
    dm = run.datamodule(batch_size=batch_size, num_workers=0)
    feats, labels, cues, patients, index = [], [], [], [], []
    for batch in dm.dataloader(split):
        feats.append(pooled_features(model, batch["image"].to(device)).double().cpu().numpy())
        labels.append(batch["label"].numpy())
        index.append(batch["index"].numpy())
        patients += list(batch["patient_id"])
        if "cue" in batch:
            cues.append(batch["cue"].numpy())
    if not feats:
        raise ValueError(f"split {split!r} of run {run.name!r} is empty")
    return Features(np.concatenate(feats), np.concatenate(labels), np.concatenate(cues) if cues else None,
                    np.asarray(patients), np.concatenate(index))  # fmt: skip


def balanced_subsample(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices: every group subsampled (without replacement) to the smallest group's size, sorted."""
    names, counts = np.unique(groups, return_counts=True)
    k = int(counts.min())
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(groups == g), k, replace=False) for g in names]))


def worst_group_accuracy(pred: np.ndarray, label: np.ndarray, groups: np.ndarray) -> tuple[float, dict[str, float]]:
    """``(min over groups of the accuracy, {group: accuracy})``."""
    per = {str(g): float(np.mean(pred[groups == g] == label[groups == g])) for g in np.unique(groups)}
    return min(per.values()), per


def _fit_l1(z: np.ndarray, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        raise ValueError("a balanced subsample holds one class only: DFR needs both labels in the held-out split")
    lr = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", random_state=seed, max_iter=1000).fit(z, y)
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def _averaged_fit(z, y, groups, c, n_subsamples, seed) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    fits = [_fit_l1(z[idx], y[idx], c, seed + s) for s, idx in
            enumerate(balanced_subsample(groups, rng) for _ in range(n_subsamples))]  # fmt: skip
    return np.mean([w for w, _ in fits], axis=0), float(np.mean([b for _, b in fits]))


def _tune_c(z, y, groups, patients, grid, n_subsamples, seed) -> tuple[float, dict[str, float]]:
    """The ``C`` of ``grid`` with the best worst-group accuracy on half of the patients, fitted on the other half."""
    rng = np.random.default_rng(seed)
    unique = rng.permutation(np.unique(patients))
    held = np.isin(patients, unique[: len(unique) // 2])
    if len(np.unique(groups[~held])) < len(np.unique(groups)) or len(np.unique(groups[held])) < len(np.unique(groups)):
        log.warning("DFR: a half of the held-out patients lacks a group; C = %g (the grid's first)", grid[0])
        return float(grid[0]), {}
    scores = {}
    for c in grid:
        w, b = _averaged_fit(z[~held], y[~held], groups[~held], c, n_subsamples, seed)
        scores[str(c)] = worst_group_accuracy(((z[held] @ w + b) > 0).astype(int), y[held], groups[held])[0]
    best = max(grid, key=lambda c: scores[str(c)])  # ties: the first of the grid (weakest penalty)
    return float(best), scores


def dfr_fit(
    features: np.ndarray,
    label: np.ndarray,
    groups: np.ndarray,
    patients: np.ndarray | None = None,
    c: float | None = None,
    n_subsamples: int = 10,
    seed: int = 0,
    grid: tuple[float, ...] = C_GRID,
) -> LinearFit:
    """The DFR head (see the module docstring) on ``features (N, C)``, binary ``label`` and ``groups`` (N,)."""
    features, label, groups = np.asarray(features, np.float64), np.asarray(label).astype(int), np.asarray(groups)
    if n_subsamples < 1:
        raise ValueError(f"n_subsamples must be >= 1, got {n_subsamples}")
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)  # constant features stay at 0 after standardising
    z = (features - mean) / scale
    scores: dict[str, float] = {}
    if c is None:
        c, scores = _tune_c(z, label, groups, patients if patients is not None else np.arange(len(z)), grid,
                            n_subsamples, seed)  # fmt: skip
    w, b = _averaged_fit(z, label, groups, float(c), n_subsamples, seed)
    names, counts = np.unique(groups, return_counts=True)
    info = {"C": float(c), "C_scores_worst_group_acc": scores, "n_subsamples": n_subsamples,
            "group_sizes": {str(g): int(n) for g, n in zip(names, counts)}, "subsample_group_size": int(counts.min())}  # fmt: skip
    return LinearFit(w, b, mean, scale, info)


def label_cue_groups(label: np.ndarray, cue: np.ndarray | None, where: str) -> np.ndarray:
    """Group names ``y{label}_cue{cue}``; a ``ValueError`` when the cue column is missing or has empty cells."""
    if cue is None:
        raise ValueError(f"{where}: the manifest has no `cue` column; DFR's groups are label x cue")
    if np.any(cue < 0):
        raise ValueError(f"{where}: {int(np.sum(cue < 0))} slices have an empty `cue` cell; fill the column")
    return np.array([f"y{int(y)}_cue{int(c)}" for y, c in zip(label, cue)])


def _head_probs(head: nn.Linear, features: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = head(torch.as_tensor(features, dtype=head.weight.dtype))
    return logits.softmax(dim=1)[:, 1].double().numpy()


def refit_head(model: nn.Module, fit: LinearFit) -> nn.Module:
    """A copy of ``model`` whose 2-class head gives ``logit_1 = fit.decision_function(f)``, ``logit_0 = 0``."""
    if model.head.out_features != 2:
        raise ValueError(f"DFR refits a binary head; this model has {model.head.out_features} classes")
    model = copy.deepcopy(model)
    w, b = fit.raw()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1] = torch.as_tensor(w, dtype=model.head.weight.dtype)
        model.head.bias[1] = b
    return model


def dfr_run(
    run: str | Path,
    out: str | Path,
    split: str = "val",
    c: float | None = None,
    n_subsamples: int = 10,
    seed: int = 0,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Refit the head of the trained classifier ``run`` by DFR on ``split``; write the complete run folder ``out``.

    ``out`` gets ``config.yaml`` (the run's, ``output`` pointing at ``out``), ``model.safetensors`` (the run's
    model with the new head) and ``dfr.json``; ``mtlswin evaluate OUT`` then works as for any run.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {str(out)!r} is not empty; give a new folder for the DFR run")
    opened = Run.open(run)
    _check_model(opened.model)
    feats = extract_features(opened, split, batch_size)
    groups = label_cue_groups(feats.label, feats.cue, f"run {opened.name!r}, split {split!r}")
    fit = dfr_fit(feats.features, feats.label, groups, feats.patient_id, c, n_subsamples, seed)
    new_model = refit_head(opened.model, fit)
    threshold = opened.threshold
    before = worst_group_accuracy((_head_probs(opened.model.head, feats.features) >= threshold).astype(int),
                                  feats.label, groups)  # fmt: skip
    after = worst_group_accuracy((_head_probs(new_model.head, feats.features) >= threshold).astype(int),
                                 feats.label, groups)  # fmt: skip
    report = {
        "method": "DFR (Kirichenko et al., ICLR 2023): last layer refit on group-balanced held-out data",
        "source_run": str(opened.root), "split": split, "groups": "label x cue", **fit.info, "seed": seed,
        "worst_group_acc_before": before[0], "worst_group_acc_after": after[0],
        "group_acc_before": before[1], "group_acc_after": after[1],
        "note": "accuracies on the split the head was fitted on ('after' is in-sample); evaluate OUT for test splits",
    }  # fmt: skip
    config = stored_config(opened.config)
    config.output.dir, config.output.name = str(out.absolute().parent), out.name
    with created_dir(out):
        save_config(config, out / "config.yaml")
        save_model(new_model, out / "model.safetensors")
        atomic_write_text(out / "dfr.json", json.dumps(report, indent=2) + "\n")
    return report


@dataclass(frozen=True)
class DFRSettings:
    """The settings of :func:`dfr_run` (post hoc, on a trained run folder), with its defaults."""

    name: ClassVar[str] = "dfr"
    split: str = "val"  # the held-out split the head is refit on (group-balanced)
    c: float | None = None  # inverse L1 strength; None = chosen from C_GRID on half of the held-out patients
    n_subsamples: int = 10  # balanced subsamples whose fits are averaged
    seed: int = 0


def _run(settings: DFRSettings, run: str | Path, out: str | Path, batch_size: int | None = None) -> dict[str, Any]:
    return dfr_run(run, out, batch_size=batch_size, **dataclasses.asdict(settings))


register_method("dfr", DFRSettings, "post_hoc", _run)
