"""Model speed and size on this machine (not a test): ``python benchmarks/models.py``.

1. Train-step and inference images/s at 224x224, batch 8, 2 threads, of ``swin`` (depths 2-2-2-2)
   and ``mtl_swin_unet`` cls+seg+rec with a shared and with separate decoders, and their cost
   ratios to ``swin`` (target: shared MTL <= 2.0x for both), from the fastest of ``--reps`` interleaved
   repetitions, and the ratio of their medians.
   Also the FLOPs of the same steps (matmuls/convs/attention, counted by torch), whose ratios do not
   depend on what else the machine is running.
2. Every registered model: parameter count at the paper's size (224, defaults) and the forward
   time of its tiny config (batch 2, one thread).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mtlswin.models import create_model, list_models, test_overrides

SPEED_MODELS = {
    "swin": ("swin", {}),
    "mtl shared": ("mtl_swin_unet", {"tasks": "cls+seg+rec", "decoder": "shared"}),
    "mtl separate": ("mtl_swin_unet", {"tasks": "cls+seg+rec", "decoder": "separate"}),
}
PAPER_VARIANTS = {"mtl_swin_unet": [{"tasks": t} for t in ("cls+seg", "cls+rec", "cls+seg+rec")] + [{"size": "tiny"}]}


def _loss(out: dict[str, torch.Tensor], x: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy / pixel cross-entropy / MSE on whatever outputs the model has (the work of a real step)."""
    loss = x.new_zeros(())
    if "logits" in out:
        loss = loss + F.cross_entropy(out["logits"], label)
    if "seg" in out:
        loss = loss + F.cross_entropy(out["seg"], mask)
    if "rec" in out:
        loss = loss + F.mse_loss(out["rec"], x)
    return loss


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _seconds(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def _timings(fns: dict, reps: int, warmup: int = 1) -> dict[str, list[float]]:
    """``reps`` timed calls of each function, interleaved round-robin after ``warmup`` calls each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(reps):
        for key, fn in fns.items():
            times[key].append(_seconds(fn))
    return times


def _best_seconds(fns: dict, reps: int, warmup: int = 1) -> dict[str, float]:
    """Fastest of ``reps`` interleaved timed calls of each function: on a shared machine, the estimate
    least disturbed by other processes."""
    return {key: min(t) for key, t in _timings(fns, reps, warmup).items()}


def speed(batch: int, size: int, reps: int, device: str = "cpu") -> dict[str, tuple[list[float], list[float]]]:
    """{label: (train-step seconds, inference seconds)} per batch, every timed repetition."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, size, size, generator=g).to(device)
    label = torch.randint(0, 2, (batch,), generator=g).to(device)
    mask = torch.randint(0, 2, (batch, size, size), generator=g).to(device)
    train, infer = {}, {}
    for label_name, (name, options) in SPEED_MODELS.items():
        torch.manual_seed(0)
        model = create_model(name, img_size=size, **options).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def train_step(model=model, opt=opt):
            model.train()
            opt.zero_grad(set_to_none=True)
            _loss(model(x), x, label, mask).backward()
            opt.step()

        def inference(model=model):
            model.eval()
            with torch.inference_mode():
                model(x)

        train[label_name], infer[label_name] = train_step, inference
    t_train, t_infer = _timings(train, reps), _timings(infer, reps)
    return {k: (t_train[k], t_infer[k]) for k in SPEED_MODELS}


def flops(size: int) -> dict[str, tuple[float, float]]:
    """{label: (train-step GFLOP, inference GFLOP)} per image, counted by torch's FlopCounterMode (matmuls,
    convolutions, attention; not element-wise ops): the load-independent part of the cost ratio."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 1, size, size)
    label, mask = torch.zeros(1, dtype=torch.long), torch.zeros(1, size, size, dtype=torch.long)
    out = {}
    for label_name, (name, options) in SPEED_MODELS.items():
        model = create_model(name, img_size=size, **options)
        with FlopCounterMode(display=False) as infer_count, torch.no_grad():
            model.eval()(x)
        with FlopCounterMode(display=False) as train_count:
            _loss(model.train()(x), x, label, mask).backward()
        out[label_name] = (train_count.get_total_flops() / 1e9, infer_count.get_total_flops() / 1e9)
    return out


def sizes_and_tiny_times(reps: int) -> list[tuple[str, int, float]]:
    """(name [variant], parameters at paper size, tiny forward ms) for every registered model."""
    rows = []
    for name in list_models():
        for variant in PAPER_VARIANTS.get(name, [{}]):
            paper = create_model(name, **variant)
            n_params = sum(p.numel() for p in paper.parameters())
            del paper
            tiny = create_model(name, **{**test_overrides(name), **variant}).eval()
            side = getattr(tiny.config, "img_size", 32)
            x = torch.rand(2, 1, side, side)

            def forward(tiny=tiny, x=x):
                with torch.inference_mode():
                    tiny(x)

            ms = 1000 * _best_seconds({"f": forward}, reps, warmup=2)["f"]
            label = name + (" " + " ".join(f"{k}={v}" for k, v in variant.items()) if variant else "")
            rows.append((label, n_params, ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=8, help="timed repetitions after one warm-up (fastest and median)")
    parser.add_argument("--device", default="cpu", help="cpu (the issue's setting) or cuda (speed table only)")
    parser.add_argument("--speed-only", action="store_true", help="the speed table only (no FLOPs, no size table)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size}, batch {args.batch}")

    if args.device != "cpu":
        print(f"device {args.device}: {torch.cuda.get_device_name() if args.device.startswith('cuda') else ''}")
    res = speed(args.batch, args.size, args.reps, args.device)
    best = {k: (min(t), min(i)) for k, (t, i) in res.items()}
    median = {k: (statistics.median(t), statistics.median(i)) for k, (t, i) in res.items()}
    base_train, base_infer = best["swin"]
    print(f"\n{'model':<14} {'train img/s':>12} {'infer img/s':>12} {'train x swin':>13} {'infer x swin':>13}")
    for label, (t_train, t_infer) in best.items():
        print(
            f"{label:<14} {args.batch / t_train:>12.2f} {args.batch / t_infer:>12.2f} "
            f"{t_train / base_train:>13.2f} {t_infer / base_infer:>13.2f}"
        )
    shared_train, shared_infer = (t / b for t, b in zip(best["mtl shared"], best["swin"], strict=True))
    median_train, median_infer = (t / b for t, b in zip(median["mtl shared"], median["swin"], strict=True))
    verdict = "OK" if shared_train <= 2.0 and shared_infer <= 2.0 else "ABOVE TARGET"
    print(
        f"target shared MTL <= 2.0x swin (fastest of {args.reps}): train {shared_train:.2f}x, inference "
        f"{shared_infer:.2f}x -> {verdict}; ratio of medians: {median_train:.2f}x / {median_infer:.2f}x"
    )

    if args.device != "cpu" or args.speed_only:
        return
    counted = flops(args.size)
    base_train_f, base_infer_f = counted["swin"]
    print(f"\n{'model':<14} {'train GFLOP/img':>16} {'infer GFLOP/img':>16} {'train x swin':>13} {'infer x swin':>13}")
    for label, (f_train, f_infer) in counted.items():
        print(
            f"{label:<14} {f_train:>16.2f} {f_infer:>16.2f} {f_train / base_train_f:>13.2f} {f_infer / base_infer_f:>13.2f}"
        )

    # Tiny models gain nothing from threads, and one thread cannot stall at a barrier waiting for a
    # descheduled sibling (which, on a shared machine, costs tiny forwards hundreds of ms).
    torch.set_num_threads(1)
    print(f"\n{'model (paper size, 224)':<44} {'parameters':>12} {'tiny fwd ms (batch 2, 1 thread)':>32}")
    for label, n_params, ms in sizes_and_tiny_times(reps=20):
        print(f"{label:<44} {n_params:>12,} {ms:>32.1f}")


if __name__ == "__main__":
    main()
