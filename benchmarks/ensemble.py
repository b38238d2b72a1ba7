"""A vectorised ensemble of seeds against separate runs, model only (not a test): ``python benchmarks/ensemble.py``.

The speed work listed "training several seeds of one row as one vectorised ensemble" as a lever: each kernel would do
K seeds' work. Its premise is that a kernel costs less per image when it does more of them. This script measures
the premise and the ensemble itself on a demo config, one optimiser step of K members, batch 32 each:

- ``separate``: K models, one step each, one after the other (what K runs do);
- ``one batch``: one model on one batch of 32 K images (the premise: is a larger batch cheaper per image?);
- ``ensemble``: the K models' parameters stacked (``torch.func.stack_module_state``), one forward and backward
  of all members through ``torch.vmap(functional_call)``, one fused AdamW over the stacked tensors.

Every variant uses the demo's AdamW (decay on weight matrices only) and a stand-in loss with the same work as
the real one: cross-entropy of the logits, plus cross-entropy of the segmentation logits for models with a
``seg`` output (``MultitaskLoss`` selects the slices with a mask, a data-dependent shape that ``vmap`` cannot
batch). The members train with no stochastic layer (the demo's drop path is 0): ``vmap`` refuses random
operations, so a member's step is the separate model's step, which :func:`ensemble_matches_separate` checks.
The variants are timed interleaved in one process (medians of ``--repeats`` x ``--steps``), with the training
step's settings (subnormals flushed, glibc's heap kept).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("separate", "one batch", "ensemble")


def build_members(row: str, k: int, overrides: list[str] | None = None) -> tuple[list[nn.Module], object]:
    """K models of ``configs/demo/<row>.yaml``, member i initialised under ``torch.manual_seed(i)``; and the config."""
    from mtlswin.config import load_config
    from mtlswin.training.train import build_model

    config = load_config(REPO / "src/mtlswin/configs/demo" / f"{row}.yaml", overrides or [])
    members = []
    for seed in range(k):
        torch.manual_seed(seed)
        members.append(build_model(config))
    return members, config


def stand_in_loss(outputs: dict[str, Tensor], labels: Tensor, masks: Tensor) -> Tensor:
    """Cross-entropy of ``logits`` (B, 2) against ``labels`` (B,), plus that of ``seg`` (B, C, H, W) against ``masks``."""
    loss = F.cross_entropy(outputs["logits"], labels)
    if "seg" in outputs:
        loss = loss + F.cross_entropy(outputs["seg"], masks)
    return loss


def _adamw(groups: list[dict], train) -> torch.optim.Optimizer:
    """The demo's AdamW (``build_optimizer``'s, fused) over prepared weight-decay groups."""
    return torch.optim.AdamW(groups, lr=train.lr, weight_decay=train.weight_decay, fused=True)


def separate_step(members: list[nn.Module], train) -> Callable[[Tensor, Tensor, Tensor], None]:
    """A step of each member on its own batch (``images[i]``), one after the other."""
    from mtlswin.training.schedule import build_optimizer

    optimizers = [build_optimizer(m, train.lr, weight_decay=train.weight_decay, name="adamw") for m in members]

    def step(images: Tensor, labels: Tensor, masks: Tensor) -> None:
        for i, (model, opt) in enumerate(zip(members, optimizers, strict=True)):
            opt.zero_grad(set_to_none=True)
            stand_in_loss(model(images[i]), labels[i], masks[i]).backward()
            opt.step()

    return step


def one_batch_step(model: nn.Module, train) -> Callable[[Tensor, Tensor, Tensor], None]:
    """A step of one model on all K batches as one batch of 32 K."""
    from mtlswin.training.schedule import build_optimizer

    opt = build_optimizer(model, train.lr, weight_decay=train.weight_decay, name="adamw")

    def step(images: Tensor, labels: Tensor, masks: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        stand_in_loss(model(images.flatten(0, 1)), labels.flatten(0, 1), masks.flatten(0, 1)).backward()
        opt.step()

    return step


class Ensemble:
    """K members as stacked parameters (K, ...) trained by one vmapped forward/backward and one AdamW.

    The weight-decay groups are the members' own (timm's ``param_groups_weight_decay`` of member 0, by name), so
    member i's update is what its separate AdamW would do.
    """

    def __init__(self, members: list[nn.Module], train) -> None:
        from timm.optim import param_groups_weight_decay

        self.params, self.buffers = stack_module_state(members)  # leaves that require grad, for the optimiser
        self.base = copy.deepcopy(members[0]).to("meta")  # the structure only; the weights come in as arguments
        names = {id(p): name for name, p in members[0].named_parameters()}
        groups = []
        for group in param_groups_weight_decay(members[0], train.weight_decay):
            stacked = [self.params[names[id(p)]] for p in group["params"]]
            groups.append({"params": stacked, "weight_decay": group["weight_decay"]})
        self.optimizer = _adamw(groups, train)
        self._loss = torch.vmap(self._member_loss)

    def _member_loss(self, params, buffers, images: Tensor, labels: Tensor, masks: Tensor) -> Tensor:
        return stand_in_loss(functional_call(self.base, (params, buffers), (images,)), labels, masks)

    def step(self, images: Tensor, labels: Tensor, masks: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._loss(self.params, self.buffers, images, labels, masks).sum().backward()
        self.optimizer.step()

    def member_state(self, i: int) -> dict[str, Tensor]:
        return {name: p[i].detach() for name, p in self.params.items()}


def random_batches(k: int, size: int, n_seg: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """K batches of 32: images (K, 32, 1, size, size), labels (K, 32), masks (K, 32, size, size)."""
    images = torch.randn(k, 32, 1, size, size, generator=generator)
    labels = torch.randint(0, 2, (k, 32), generator=generator)
    masks = torch.randint(0, n_seg, (k, 32, size, size), generator=generator)
    return images, labels, masks


def ensemble_matches_separate(row: str, k: int, steps: int, overrides: list[str] | None = None) -> float:
    """Largest difference between an ensemble member's weights and its separate model's after ``steps`` steps."""
    members, config = build_members(row, k, overrides)
    ensemble = Ensemble(members, config.train)
    step = separate_step(members, config.train)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = random_batches(k, config.model.options["img_size"], 2, g)
        ensemble.step(*batch)
        step(*batch)
    return max(
        (ensemble.member_state(i)[name] - p.detach()).abs().max().item()
        for i, model in enumerate(members)
        for name, p in model.named_parameters()
    )


def time_variants(row: str, k: int, steps: int, repeats: int) -> dict[str, float]:
    """Median ms of one step of K members under each variant, timed interleaved."""
    from mtlswin.training.train import training_settings

    members, config = build_members(row, k)
    runs = {
        "separate": separate_step(members, config.train),
        "one batch": one_batch_step(copy.deepcopy(members[0]), config.train),
        "ensemble": Ensemble(copy.deepcopy(members), config.train).step,
    }
    batch = random_batches(k, config.model.options["img_size"], 2, torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in runs}
    with training_settings():
        for run in runs.values():  # warm-up: the allocator, AdamW's state
            for _ in range(2):
                run(*batch)
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                for _ in range(steps):
                    run(*batch)
                times[name].append((time.perf_counter() - start) / steps * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="swin,mtl_cls_seg", help="demo config stems")
    p.add_argument("--ks", default="1,2,4", help="ensemble sizes")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the demo trains two runs, one each)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"| row | K | {' | '.join(f'{v} ms a step (per 32 images)' for v in VARIANTS)} |")
    print("|---|---|" + "---|" * len(VARIANTS))
    for row in args.rows.split(","):
        for k in (int(x) for x in args.ks.split(",")):
            ms = time_variants(row, k, args.steps, args.repeats)
            cells = " | ".join(f"{ms[v]:.1f} ({ms[v] / k:.1f})" for v in VARIANTS)
            print(f"| `{row}` | {k} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
