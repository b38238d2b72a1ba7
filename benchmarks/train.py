"""Training and inference throughput of real ``mtlswin train`` steps (not a test): ``python benchmarks/train.py``.

Rows (images/s), for ``swin`` and ``mtl_swin_unet`` cls+seg+rec built from their paper configs
(``configs/paper/swin.yaml``, ``configs/paper/mtl_cls_seg_rec.yaml``):

- ``model only``: the model, its ``MultitaskLoss`` and SGD on synthetic tensors already on the device
  (train step, and inference: full outputs, and for MTL also ``tasks=("cls",)``), timed step by step,
  interleaved round-robin between the models so that a shared machine disturbs them alike; median of
  ``--steps`` repetitions after ``--warmup``.
- ``end to end``: ``--warmup + --steps`` optimiser steps of the real training code (``MTLModule``,
  ``CTDataModule`` with its cache, augmentation and DataLoader workers, Lightning with the run's loggers,
  precision and ``trainer.compile``) on a phantom written by ``mtlswin.data.phantom``; the timer runs from
  the start of step ``--warmup`` to the end of the last step. Validation and checkpoints are off (they
  are per epoch, not per step). ``--device-cache`` adds the same rows with ``data.device_cache: true``
  (the train split on the device, each batch gathered and augmented there; no loader workers).
- ``authors``: with ``--authors PATH`` (a checkout of ko-hirata/Swin-Multitask; their code is not part of
  this project), their ``SwinTransformerSysMTL`` in float32 eager as they ran it, same batch, input
  repeated to 3 channels, CE + CE + MSE: train step and inference. First their (perturbed, random) weights
  are converted into our model with ``from_authors_mtl`` and the outputs compared on the device (<= 1e-4).

Then the ratios of the issue (from medians of the interleaved repetitions) and the projected hours of the
paper's protocol (600 epochs of 7,900 slices per row) at the measured end-to-end rates.

``--demo``: the demo rows instead (``benchmarks/demo_rows.py``): real ``train`` of the demo configs,
before and after with ``--compare OLD_CHECKOUT``, with GFLOP/s and the share of the measured matmul rate.

``--cpu-smoke``: tiny models (the registry's tiny configs), 32 px, batch 4, 3 steps, a 48-slice phantom,
no workers: checks every code path in well under a minute on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = {"swin": "swin.yaml", "mtl": "mtl_cls_seg_rec.yaml"}
PAPER_IMAGES_PER_ROW = 600 * 7_900  # the paper's protocol: 600 epochs of about 7,900 training slices
PAPER_ROWS = 12


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", default="32", choices=["32", "bf16-mixed"], help="float32, or bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: capture only, fast)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps (model only: repetitions of each)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation, allocator)")
    p.add_argument("--models", default="swin,mtl", help="comma-separated subset of: swin, mtl")
    p.add_argument("--skip-e2e", action="store_true", help="model-only rows only")
    p.add_argument("--infer-only", action="store_true", help="inference rows only (implies --skip-e2e)")
    p.add_argument(
        "--device-cache",
        action="store_true",
        help="end to end also with data.device_cache (train split on the device, augmented there)",
    )
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the config's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    p.add_argument("--slices", type=int, default=512, help="phantom slices written for the end-to-end rows")
    p.add_argument("--data", default=None, help="folder with manifest.csv + splits.csv instead of a new phantom")
    p.add_argument("--authors", default=None, help="checkout of ko-hirata/Swin-Multitask (skipped when absent)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models and sizes: a < 1 min check of every path")
    p.add_argument("--demo", action="store_true",
                   help="only the demo rows (benchmarks/demo_rows.py): real `train` of configs/demo/{swin,mtl_cls_seg} "
                   "on --data (a demo phantom folder), at --threads (default 1)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=2, help="--demo: epochs per timed run")
    p.add_argument("--repeats", type=int, default=3, help="--demo: timed runs per row and code")
    p.add_argument("--compare", default=None, help="--demo: another checkout, measured alternately with ours")
    p.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                   help="--demo: a config override for our runs only (repeatable), e.g. trainer.compile=true")  # fmt: skip
    args = p.parse_args(argv)
    if args.cpu_smoke:
        args.device, args.img_size, args.batch_size = "cpu", 32, 4
        args.steps, args.warmup, args.slices = min(args.steps, 3), 1, 48
        args.workers = 0 if args.workers is None else args.workers
    args.skip_e2e = args.skip_e2e or args.infer_only
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in PAPER_CONFIGS]
    if unknown:
        p.error(f"--models: unknown {unknown}; choose from {sorted(PAPER_CONFIGS)}")
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        p.error("--steps >= 1, --warmup >= 0 and --batch-size >= 1 please")
    return args


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def autocast(args: argparse.Namespace):
    """The autocast context Lightning's ``bf16-mixed`` uses, or nothing for float32."""
    if args.precision == "bf16-mixed":
        return torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_run_config(key: str, args: argparse.Namespace, overrides: list[str] = ()):
    """The paper config of ``key`` with the benchmark's size, batch, precision and (smoke) tiny model."""
    from mtlswin.config import load_config
    from mtlswin.models import test_overrides

    config = load_config(REPO / "configs" / "paper" / PAPER_CONFIGS[key], list(overrides))
    options = dict(config.model.options)
    options["pretrained"] = None  # never fetch weights: speed does not depend on them
    if args.cpu_smoke:
        options.update(test_overrides(config.model.name))
    options["img_size"] = args.img_size
    config.model.options = options
    config.data.img_size = args.img_size
    config.data.batch_size = args.batch_size
    config.trainer["precision"] = "bf16-mixed" if args.precision == "bf16-mixed" else "32-true"
    config.trainer["compile"] = (
        (args.compile_backend if args.compile_backend != "inductor" else True) if args.compile else False
    )
    return config


# ---------------------------------------------------------------------------------------------- model only
def model_only_fns(args: argparse.Namespace) -> dict[str, tuple[callable, int]]:
    """{row label: (one timed step, images per step)} for our models (and the authors' with --authors)."""
    from mtlswin.training.losses import MultitaskLoss
    from mtlswin.training.schedule import build_optimizer
    from mtlswin.training.train import build_model

    g = torch.Generator().manual_seed(0)
    b, s, dev = args.batch_size, args.img_size, args.device
    x = torch.rand(b, 1, s, s, generator=g).to(dev)
    batch = {
        "image": x,
        "label": torch.randint(0, 2, (b,), generator=g).to(dev),
        "mask": torch.randint(0, 2, (b, s, s), generator=g).to(dev),
        "has_mask": (torch.arange(b) % 2 == 0).to(dev),
    }
    fns: dict[str, tuple[callable, int]] = {}
    for key in args.models:
        config = load_run_config(key, args)
        torch.manual_seed(0)
        model = build_model(config).to(dev)
        tasks = tuple(model.tasks)
        loss_fn = MultitaskLoss(tasks, config.train.loss_weights, config.train.uncertainty_weighting).to(dev)
        params = [p for p in [*model.parameters(), *loss_fn.parameters()] if p.requires_grad]
        opt = build_optimizer(params, config.train.lr, config.train.momentum, config.train.weight_decay)
        run = torch.compile(model, backend=args.compile_backend) if args.compile else model

        def train_step(run=run, model=model, loss_fn=loss_fn, opt=opt):
            model.train()
            opt.zero_grad(set_to_none=True)
            with autocast(args):
                total, _ = loss_fn(run(batch["image"]), batch)
            total.backward()
            opt.step()

        def infer(run=run, model=model, tasks=None):
            model.eval()
            with torch.inference_mode(), autocast(args):
                run(x, tasks=tasks)

        fns[f"{key} train"] = (train_step, b)
        fns[f"{key} infer"] = (infer, b)
        if "cls" in tasks and len(tasks) > 1:
            fns[f"{key} infer cls-only"] = (lambda infer=infer: infer(tasks=("cls",)), b)
    fns.update(authors_fns(args, x, batch))
    return fns


def authors_model(path: Path, img_size: int) -> torch.nn.Module:
    """Their ``SwinTransformerSysMTL`` (paper defaults, 2 classes, 3 input channels) from a checkout at ``path``."""
    root = path / "Swin-Multitask" if (path / "Swin-Multitask").is_dir() else path
    if not (root / "networks").is_dir():
        raise ValueError(f"--authors {str(path)!r}: no Swin-Multitask/networks/ folder; give a checkout of their repo")
    sys.path.insert(0, str(root))
    _einops_shim()
    module = importlib.import_module("networks.swin_transformer_unet_skip_expand_decoder_sys")
    return module.SwinTransformerSysMTL(img_size=img_size, num_classes=2)


def _einops_shim() -> None:
    """Without einops installed (it is not a dependency of ours), give their code the one ``rearrange`` pattern
    it uses, ``'b h w (p1 p2 c)-> b (h p1) (w p2) c'`` with ``p1 == p2``: our ``expand_tokens``, same order."""
    import importlib.util
    import types

    if importlib.util.find_spec("einops") is not None:
        return
    from mtlswin.models.decoder import expand_tokens

    def rearrange(x: torch.Tensor, pattern: str, p1: int, p2: int, c: int) -> torch.Tensor:
        if pattern.replace(" ", "") != "bhw(p1p2c)->b(hp1)(wp2)c" or p1 != p2 or x.shape[-1] != p1 * p2 * c:
            raise NotImplementedError(f"einops shim: pattern {pattern!r} with p1={p1}, p2={p2}, c={c}")
        return expand_tokens(x, p1)

    sys.modules["einops"] = types.SimpleNamespace(rearrange=rearrange)


def authors_fns(args: argparse.Namespace, x: torch.Tensor, batch: dict) -> dict[str, tuple[callable, int]]:
    """The authors' model in float32 eager, as they trained it (their forward: cls, seg, rec)."""
    if not args.authors:
        return {}
    path = Path(args.authors)
    if not path.exists():
        print(f"authors: {path} does not exist, rows skipped")
        return {}
    torch.manual_seed(0)
    try:
        model = authors_model(path, args.img_size).to(args.device)
    except Exception as err:  # their code's own imports (einops, timm.models.layers, ...): report, go on
        print(f"authors: their model could not be built from {path} ({type(err).__name__}: {err}); rows skipped")
        return {}
    authors_equivalence(model, args)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x3 = x.repeat(1, 3, 1, 1)  # their wrapper repeats a 1-channel input to 3 channels

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        logits, seg, rec = model(x3)
        loss = 0.3 * F.cross_entropy(logits, batch["label"]) + 0.4 * F.cross_entropy(seg, batch["mask"])
        (loss + 0.4 * F.mse_loss(rec, x)).backward()
        opt.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            model(x3)

    return {"authors train": (train_step, len(x)), "authors infer": (infer, len(x))}


def authors_equivalence(theirs: torch.nn.Module, args: argparse.Namespace, tol: float = 1e-4) -> dict[str, float]:
    """Their model with perturbed random weights, converted into ours (``from_authors_mtl``): the largest
    absolute output difference per task, float32 eval on the device; ``SystemExit`` above ``tol``."""
    from mtlswin.models import create_model
    from mtlswin.models.conversion.swin import from_authors_mtl, infer_swin_unet_config

    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # LayerNorm weights of 1 and zero biases would hide a wrong mapping
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g).to(p.device))
    state = {f"swin_unet.{k}": v.cpu() for k, v in theirs.state_dict().items()}
    options = {k: v for k, v in infer_swin_unet_config(state).items() if k != "in_chans"}
    ours = create_model("mtl_swin_unet", tasks="cls+seg+rec", pretrained=None, drop_path_rate=0.0, **options)
    from_authors_mtl(ours, state)
    ours, theirs = ours.to(args.device).eval(), theirs.eval()
    x = torch.rand(2, 1, args.img_size, args.img_size, generator=g).to(args.device)
    with torch.inference_mode():
        cls, seg, rec = theirs(x.repeat(1, 3, 1, 1))
        out = ours(x)
    diffs = {k: float((a - out[key]).abs().max()) for k, key, a in
             (("cls", "logits", cls), ("seg", "seg", seg), ("rec", "rec", rec))}  # fmt: skip
    print("authors' weights converted into ours, max abs output difference: "
          + ", ".join(f"{k} {d:.2e}" for k, d in diffs.items()))  # fmt: skip
    if max(diffs.values()) > tol:
        raise SystemExit(f"converted authors' weights do not reproduce their outputs (tolerance {tol}): {diffs}")
    return diffs


def time_interleaved(
    fns: dict[str, tuple[callable, int]], steps: int, warmup: int, device: str
) -> dict[str, list[float]]:
    """Seconds of each call of each function, ``steps`` calls each, round-robin after ``warmup`` each."""
    for fn, _ in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(steps):
        for key, (fn, _) in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[key].append(time.perf_counter() - start)
    return times


def equivalence(args: argparse.Namespace) -> dict[str, float]:
    """Relative L2 error of each MTL output of the benchmarked path (bf16 and/or compiled) against float32 eager,
    on the device, eval mode, one synthetic batch; ``SystemExit`` above the tolerance (bf16 3%, float32 1e-3)."""
    from mtlswin.training.train import build_model

    config = load_run_config("mtl", args)
    torch.manual_seed(0)
    model = build_model(config).to(args.device).eval()
    x = torch.rand(args.batch_size, 1, args.img_size, args.img_size, generator=torch.Generator().manual_seed(1))
    x = x.to(args.device)
    run = torch.compile(model, backend=args.compile_backend) if args.compile else model
    with torch.inference_mode():
        ref = model(x)
        with autocast(args):
            out = run(x)
    tol = 0.03 if args.precision == "bf16-mixed" else 1e-3
    errors = {k: float((out[k].float() - ref[k]).norm() / ref[k].norm()) for k in ref}
    verdict = "OK" if all(e <= tol for e in errors.values()) else "ABOVE TOLERANCE"
    print(f"equivalence vs float32 eager (relative L2, tolerance {tol:g}): "
          + ", ".join(f"{k} {e:.2e}" for k, e in errors.items()) + f" -> {verdict}")  # fmt: skip
    if verdict != "OK":
        raise SystemExit(f"{args.precision} / compile={args.compile} outputs differ from float32 eager: {errors}")
    return errors


# ---------------------------------------------------------------------------------------------- end to end
def phantom(args: argparse.Namespace, root: Path) -> tuple[Path, Path]:
    """``(manifest, splits)``: ``--data`` or a new phantom of ``--slices`` slices with the paper's split protocol."""
    import pandas as pd

    from mtlswin.data.phantom.generate import SynthConfig
    from mtlswin.data.phantom.writer import write_dataset
    from mtlswin.data.splits import make_splits, write_splits

    if args.data:
        data = Path(args.data)
        return data / "manifest.csv", data / "splits.csv"
    size = max(args.img_size, 32) if args.cpu_smoke else 256
    write_dataset(SynthConfig(preset="demo", slices=args.slices, size=size, seed=0), root)
    table = pd.read_csv(root / "manifest.csv")
    write_splits(make_splits(table, "hypodensity", protocol="paper", seed=0), root / "splits.csv")
    return root / "manifest.csv", root / "splits.csv"


def step_timer(warmup: int, steps: int, device: str):
    """A Lightning callback whose ``seconds`` run from the start of optimiser step ``warmup`` to the end of
    step ``warmup + steps`` (``None`` until then)."""
    import lightning.pytorch as pl

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.start: float | None = None
            self.seconds: float | None = None

        def on_train_batch_start(self, trainer, *_) -> None:
            if trainer.global_step == warmup and self.start is None:
                sync(device)
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, *_) -> None:
            if trainer.global_step == warmup + steps and self.seconds is None:
                sync(device)
                self.seconds = time.perf_counter() - self.start

    return StepTimer()


def end_to_end(
    key: str, args: argparse.Namespace, manifest: Path, splits: Path, work: Path, device_cache: bool = False
) -> float:
    """Images/s of ``--steps`` real training steps of the ``key`` paper config (see the module doc);
    ``device_cache``: with ``data.device_cache: true`` (batches gathered and augmented on the device)."""
    from mtlswin.training.module import MTLModule
    from mtlswin.training.train import build_datamodule, build_model, build_trainer, training_settings

    cache = Path(args.data) / "cache" if args.data else work / "cache"  # keyed by content: safe to share
    overrides = [f"data.manifest={manifest}", f"data.splits={splits}", f"data.cache_dir={cache}",
                 f"output.dir={work / 'runs'}", f"output.name={key}{'-device-cache' if device_cache else ''}",
                 f"data.device_cache={str(device_cache).lower()}"]  # fmt: skip
    if args.workers is not None:
        overrides.append(f"data.num_workers={args.workers}")
    config = load_run_config(key, args, overrides)
    total = args.warmup + args.steps
    config.trainer.update(
        accelerator="gpu" if args.device.startswith("cuda") else "cpu", devices=1, max_steps=total, max_epochs=-1,
        limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=max(1, total),
    )  # fmt: skip
    data = build_datamodule(config)
    torch.manual_seed(0)
    module = MTLModule(build_model(config), config.train, config.to_dict())
    module.compile_training_forward(config.trainer.get("compile"))  # as mtlswin.training.train.train does
    timer = step_timer(args.warmup, args.steps, args.device)
    trainer = build_trainer(config, config.run_dir, [data.position, timer])
    with training_settings():  # the settings train() runs its steps under
        trainer.fit(module, datamodule=data)
    if timer.seconds is None:
        raise RuntimeError(f"{key}: the run stopped before step {total}")
    return args.steps * args.batch_size / timer.seconds


# ---------------------------------------------------------------------------------------------- report
def report(
    args: argparse.Namespace,
    times: dict[str, list[float]],
    sizes: dict[str, int],
    e2e: dict[tuple[str, str], float],
) -> list:
    """Print the table (median img/s, and the quartiles of the repetitions) and the ratios of medians;
    returns the rows ``(label, img/s)``. ``e2e``: ``{(model, variant): img/s}``, variant ``""`` or
    ``" device-cache"``."""
    rows = [(label, sizes[label] / statistics.median(t)) for label, t in times.items()]
    spread = {}
    for label, t in times.items():
        q1, _, q3 = statistics.quantiles(t, n=4) if len(t) > 1 else (t[0], t[0], t[0])
        spread[label] = f"{sizes[label] / q3:.2f}-{sizes[label] / q1:.2f}"
    rows.extend((f"{key} train end-to-end{variant}", r) for (key, variant), r in e2e.items())
    print(f"\n{'row':<40} {'img/s':>10}  {'quartiles':>13}")
    for label, rate in rows:
        print(f"{label:<40} {rate:>10.2f}  {spread.get(label, ''):>13}".rstrip())
    rate = dict(rows)

    def ratio(name: str, num: str, den: str, note: str) -> None:
        """``rate[num] / rate[den]``, printed when both rows exist."""
        if num in rate and den in rate:
            print(f"{name:<46} {rate[num] / rate[den]:>6.2f}x  ({note})")

    print()
    ratio("speed-up: mtl train vs authors train", "mtl train", "authors train", "model only")
    for variant in ("", " device-cache"):
        ratio(f"speed-up: mtl end-to-end{variant} vs authors train", f"mtl train end-to-end{variant}",
              "authors train", "target >= 4 on GPU")  # fmt: skip
    ratio("speed-up: mtl infer vs authors infer", "mtl infer", "authors infer", "full outputs; CPU target >= 2.2")
    ratio("cost: mtl infer cls-only vs swin infer", "swin infer", "mtl infer cls-only", "target <= 1.1")
    ratio("cost: mtl train vs swin train", "swin train", "mtl train", "time per image, MTL / swin")
    for key, variant in e2e:
        label = f"{key} train end-to-end{variant}"
        ratio(f"{key}: end-to-end{variant} / model-only", label, f"{key} train", "target >= 0.9")
    for (key, variant), r in e2e.items():
        hours = PAPER_IMAGES_PER_ROW / r / 3600
        print(f"projected {key}{variant}: {hours:.2f} h per paper row (600 x 7,900 images), "
              f"{PAPER_ROWS * hours:.1f} h for {PAPER_ROWS} rows at this rate")  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list:
    import logging
    import warnings

    args = parse_args(argv)
    if args.demo:
        import demo_rows

        if not args.data:
            raise SystemExit("--demo needs --data: a folder with a demo phantom's manifest.csv and splits.csv")
        return demo_rows.main(Path(args.data), args.epochs, args.threads or 1, args.repeats,
                              Path(args.compare) if args.compare else None, args.ours_set)  # fmt: skip
    logging.getLogger("lightning").setLevel(logging.ERROR)  # keep the table readable
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{torch.get_num_threads()} threads"
    )
    print(f"torch {torch.__version__}, {args.device} ({device_name}), {args.img_size}px, batch {args.batch_size}, "
          f"precision {args.precision}, compile {args.compile}, {args.steps} steps after {args.warmup}")  # fmt: skip
    if "mtl" in args.models and (args.precision != "32" or args.compile):
        equivalence(args)
    fns = model_only_fns(args)
    if args.infer_only:
        fns = {k: v for k, v in fns.items() if " train" not in k}
    times = time_interleaved(fns, args.steps, args.warmup, args.device)
    sizes = {k: n for k, (_, n) in fns.items()}
    e2e: dict[tuple[str, str], float] = {}
    if not args.skip_e2e:
        with tempfile.TemporaryDirectory(prefix="mtlswin-bench-") as tmp:
            manifest, splits = phantom(args, Path(tmp) / "phantom")
            for key in args.models:
                for variant in ("", " device-cache") if args.device_cache else ("",):
                    rate = end_to_end(key, args, manifest, splits, Path(tmp), device_cache=bool(variant))
                    e2e[(key, variant)] = rate
    rows = report(args, times, sizes, e2e)
    bad = [label for label, r in rows if not (math.isfinite(r) and r > 0)]
    if bad:
        raise SystemExit(f"non-positive or non-finite rates: {bad}")
    return rows


if __name__ == "__main__":
    main()
