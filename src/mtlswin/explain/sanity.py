"""Model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

A map is evidence about a model only if it changes when the model's weights are redrawn. The test, as
docs/explanations.md fixes it:

- *blocks*: the parameter groups the target logit depends on (:func:`randomisation_blocks`), top block first;
- *randomisation*: a block's tensors are redrawn from a normal with each tensor's own mean and sd
  (:func:`randomise`), so activations keep their scale; each tensor draws from its own generator, seeded by
  ``(seed, parameter name)``, so a tensor gets the same values whichever other blocks are redrawn with it
  (the cascade's steps are nested, and an independent step equals that block's draw in the cascade);
- *cascading* step k: the top k blocks redrawn; *independent* step k: block k alone (:func:`sanity_table`);
- *similarity* of the trained model's map and the randomised model's map of the same image: Spearman rank
  correlation and SSIM (torchmetrics, data range 1) (:func:`map_similarity`), averaged over the images;
- *verdict*: the method fails when, with every block redrawn, the mean Spearman or the mean SSIM is at least
  :data:`SANITY_THRESHOLD` (:func:`sanity_verdict`).
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

from mtlswin.explain.attribution import attribute
from mtlswin.explain.gradcam import LogitsOnly, _check_images

__all__ = [
    "SANITY_THRESHOLD",
    "full_randomisation_similarity",
    "map_similarity",
    "randomisation_blocks",
    "randomise",
    "sanity_table",
    "sanity_verdict",
]

SANITY_THRESHOLD = 0.5
MAX_BLOCKS = 8  # more fine blocks than this: group by the container instead (``backbone.layer4``)

Block = tuple[str, list[str]]


def _block_name(name: str, coarse: bool) -> str:
    """The block of parameter ``name``: the prefix up to the first numeric component (``encoder.stages.3``), or,
    ``coarse``, the prefix before it (``encoder.stages``); without a numeric component, the first two components
    (``encoder.norm``) or, for a two-component name, the module (``head``)."""
    parts = name.split(".")
    numeric = next((i for i, part in enumerate(parts) if part.isdigit()), None)
    if numeric is not None and not (coarse and numeric == 0):
        return ".".join(parts[: numeric if coarse else numeric + 1])
    if len(parts) > 2:
        return ".".join(parts[:2])
    return ".".join(parts[:-1]) or name


def _group(names: Sequence[str], coarse: bool) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_block_name(name, coarse), []).append(name)
    return groups


def _in_block(name: str, block: str) -> bool:
    return block == "" or name == block or name.startswith(block + ".")


def _dependence_and_call_order(
    model: nn.Module, images: torch.Tensor, target_class: int
) -> tuple[set[str], dict[str, int]]:
    """Names of the parameters with a nonzero gradient of the ``target_class`` logit (summed over ``images``)
    and the index of each module's first call in that forward pass. The model is left as it was: frozen
    parameters require grad only during the pass, gradients go to ``torch.autograd.grad`` (never ``.grad``)."""
    params = dict(model.named_parameters())
    flags = {name: p.requires_grad for name, p in params.items()}
    was_training = model.training
    first_call: dict[str, int] = {}

    def hook(name: str):
        def record(_module: nn.Module, _args: tuple) -> None:  # returns None: the input is left unchanged
            first_call.setdefault(name, len(first_call))

        return record

    handles = [module.register_forward_pre_hook(hook(name)) for name, module in model.named_modules()]
    device = next(iter(params.values())).device
    try:
        for p in params.values():
            p.requires_grad_(True)
        logits = LogitsOnly(model.eval())(images.detach().to(device=device, dtype=torch.float32))
        if not 0 <= target_class < logits.shape[-1]:
            raise ValueError(f"target_class {target_class} out of range for a model with {logits.shape[-1]} classes")
        target = logits[:, target_class].sum()
        if not target.requires_grad:
            return set(), first_call
        grads = torch.autograd.grad(target, list(params.values()), allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
        for name, p in params.items():
            p.requires_grad_(flags[name])
        model.train(was_training)
    used = {name for name, g in zip(params, grads) if g is not None and bool(g.ne(0).any())}
    return used, first_call


def _first_call(block: str, first_call: dict[str, int]) -> int:
    """When the block first ran: its earliest called module, else its nearest called ancestor (the root runs)."""
    inside = [index for name, index in first_call.items() if _in_block(name, block)]
    if inside:
        return min(inside)
    while block:
        block = block.rpartition(".")[0]
        if block in first_call:
            return first_call[block]
    return first_call.get("", 0)


def randomisation_blocks(model: nn.Module, images: torch.Tensor, target_class: int = 1) -> list[Block]:
    """The blocks the ``target_class`` logit depends on, top block first: ``[(block name, [parameter names])]``.

    Parameters are grouped by the prefix up to their first numeric component (``encoder.stages.3``; without
    one, the first two components, ``encoder.norm``, or the module, ``head``); if more than :data:`MAX_BLOCKS`
    such blocks have a parameter with a nonzero gradient of the logit on ``images``, by the prefix before the
    numeric component instead (``backbone.layer4``). Only those blocks are kept (a decoder, or a segmenter run
    under ``no_grad``, is not one), ordered by the first call of their modules in the forward pass, reversed.
    The model is left exactly as it was (mode, ``requires_grad``, ``.grad``).
    """
    _check_images(images)
    used, first_call = _dependence_and_call_order(model, images, target_class)
    names = [name for name, _ in model.named_parameters()]
    for coarse in (False, True):
        groups = {block: members for block, members in _group(names, coarse).items() if used.intersection(members)}
        if len(groups) <= MAX_BLOCKS:
            break
    order = {block: (_first_call(block, first_call), i) for i, block in enumerate(groups)}
    return [(block, groups[block]) for block in sorted(groups, key=order.__getitem__, reverse=True)]


def _parameter_names(model: nn.Module, blocks: Sequence[str | Block]) -> list[str]:
    """The parameter names of ``blocks`` (names, or ``(name, parameter names)`` items), in the model's order."""
    names = [name for name, _ in model.named_parameters()]
    chosen: set[str] = set()
    for item in blocks:
        if isinstance(item, str):
            members = [name for name in names if _in_block(name, item)]
            if not members:
                raise ValueError(f"block {item!r} holds no parameter of {type(model).__name__}")
        else:
            block, members = item
            unknown = sorted(set(members) - set(names))
            if unknown:
                raise ValueError(f"block {block!r} names parameters the model does not have: {unknown[:3]}")
        chosen.update(members)
    return [name for name in names if name in chosen]


def _generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{int(seed)}:{name}".encode()))


def randomise(model: nn.Module, blocks: Sequence[str | Block], seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose parameters in ``blocks`` are redrawn from ``N(mean, sd)`` of each tensor.

    ``blocks``: block names (every parameter under that prefix) or :func:`randomisation_blocks` items. A tensor
    of one element, or with sd 0 (a LayerNorm weight at its initial 1), keeps its value. The draw of a tensor
    depends only on ``(seed, its name)``. ``model`` itself is not touched.
    """
    names = set(_parameter_names(model, blocks))
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in copied.named_parameters():
            if name not in names or p.numel() < 2:
                continue
            values = p.detach().double()
            mean, sd = values.mean(), values.std()
            if not bool(torch.isfinite(sd)) or float(sd) == 0.0:
                continue
            draw = torch.randn(p.shape, generator=_generator(seed, name), dtype=torch.float64) * sd.cpu() + mean.cpu()
            p.copy_(draw.to(device=p.device, dtype=p.dtype))
    return copied


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    a_constant, b_constant = np.ptp(a) == 0, np.ptp(b) == 0
    if a_constant or b_constant:
        return 1.0 if a_constant and b_constant and a[0] == b[0] else 0.0
    return float(spearmanr(a, b).statistic)


def map_similarity(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image similarity of maps ``a, b (N, H, W)`` in [0, 1]: ``spearman`` (rank correlation of the flattened
    maps; a constant map: 1 if both are the same constant, else 0) and ``ssim`` (torchmetrics, data range 1)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"maps must both be (N, H, W), got {a.shape} and {b.shape}")
    spearman = np.array([_spearman(x.ravel(), y.ravel()) for x, y in zip(a, b)])
    ssim = structural_similarity_index_measure(
        torch.from_numpy(b[:, None]).float(), torch.from_numpy(a[:, None]).float(), data_range=1.0, reduction="none"
    )
    return {"spearman": spearman, "ssim": ssim.reshape(len(a)).double().numpy()}


def _blocks_of(model: nn.Module, images: torch.Tensor, target_class: int) -> list[Block]:
    """:func:`randomisation_blocks`, refusing a logit that depends on no parameter (nothing to randomise)."""
    blocks = randomisation_blocks(model, images, target_class)
    if not blocks:
        raise ValueError(f"the logit {target_class} of {type(model).__name__} depends on no parameter")
    return blocks


def _verdict(spearman: float, ssim: float) -> dict[str, float | bool]:
    """The mean similarities to the fully randomised model and whether both stay below the threshold."""
    return {"spearman_full": spearman, "ssim_full": ssim,
            "passes": spearman < SANITY_THRESHOLD and ssim < SANITY_THRESHOLD}  # fmt: skip


def _similarity_row(
    model: nn.Module, images: torch.Tensor, blocks: Sequence[Block], reference: np.ndarray, kwargs: dict, seed: int
) -> dict[str, np.ndarray]:
    maps = attribute(randomise(model, blocks, seed=seed), images, **kwargs)
    return map_similarity(reference, maps)


def sanity_table(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    target_class: int = 1,
    stage: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Cascading and independent randomisation of ``model``'s blocks: one row per step.

    Columns: ``variant`` ("cascading": the top ``step`` blocks redrawn; "independent": block ``step`` alone),
    ``step`` (1..n), ``block`` (the block added, or redrawn alone, at that step), ``spearman`` and ``ssim``
    (means over ``images`` of the similarity between the trained and the randomised model's ``method`` maps).
    """
    kwargs = {"method": method, "target_class": target_class, "stage": stage}
    reference = attribute(model, images, **kwargs)
    blocks = _blocks_of(model, images, target_class)
    rows = []
    for variant in ("cascading", "independent"):
        for k, (block, _) in enumerate(blocks, start=1):
            chosen = blocks[:k] if variant == "cascading" else [blocks[k - 1]]
            sim = _similarity_row(model, images, chosen, reference, kwargs, seed)
            rows.append({"variant": variant, "step": k, "block": block, **{m: float(v.mean()) for m, v in sim.items()}})
    return pd.DataFrame(rows, columns=["variant", "step", "block", "spearman", "ssim"])


def sanity_verdict(table: pd.DataFrame) -> dict[str, float | bool]:
    """``spearman_full`` and ``ssim_full`` (the last cascading step: every block redrawn) and ``passes``: both
    below :data:`SANITY_THRESHOLD`."""
    cascade = table[table["variant"] == "cascading"]
    if cascade.empty:
        raise ValueError("the table has no cascading step; build it with sanity_table()")
    last = cascade.loc[cascade["step"].idxmax()]
    return _verdict(float(last["spearman"]), float(last["ssim"]))


def full_randomisation_similarity(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    target_class: int = 1,
    stage: int | None = None,
    seed: int = 0,
) -> dict[str, object]:
    """The last cascading step of :func:`sanity_table` alone (one randomised model): every block redrawn.

    Returns ``spearman_full``, ``ssim_full`` (means), ``passes`` (both below :data:`SANITY_THRESHOLD`),
    ``n_blocks`` and the per-image ``spearman`` and ``ssim`` arrays.
    """
    kwargs = {"method": method, "target_class": target_class, "stage": stage}
    blocks = _blocks_of(model, images, target_class)
    sim = _similarity_row(model, images, blocks, attribute(model, images, **kwargs), kwargs, seed)
    return {**_verdict(float(sim["spearman"].mean()), float(sim["ssim"].mean())), "n_blocks": len(blocks), **sim}
