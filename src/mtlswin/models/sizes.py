"""Size rules shared by the Swin encoder and the Swin-Unet decoder.

A Swin stack of ``n`` stages on an ``img_size`` image with patch ``p`` has stage resolutions
``r_i = img_size / (p * 2**i)`` for ``i = 0..n-1``. Windowed attention (and the decoder's exact
mirror of it) needs every ``r_i`` to be an integer divisible by the window size ``w``. Because
``r_i = r_{n-1} * 2**(n-1-i)``, that holds iff ``img_size`` is a multiple of ``p * 2**(n-1) * w``
(224 for the paper's p=4, 4 stages, w=7).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["check_swin_sizes", "stage_resolutions", "valid_img_sizes_near"]


def stage_resolutions(img_size: int, patch_size: int, n_stages: int) -> list[float]:
    """Token-grid side of each stage, ``img_size / (patch_size * 2**i)`` (floats: may be fractional)."""
    return [img_size / (patch_size * 2**i) for i in range(n_stages)]


def valid_img_sizes_near(img_size: int, patch_size: int, window_size: int, n_stages: int) -> list[int]:
    """The valid image size(s) closest to ``img_size``: the multiples of ``patch * 2**(n-1) * window`` around it."""
    step = patch_size * 2 ** (n_stages - 1) * window_size
    below = (img_size // step) * step
    if below == img_size:
        return [img_size]
    candidates = [s for s in (below, below + step) if s > 0]
    return sorted(candidates, key=lambda s: (abs(s - img_size), s))


def _fmt(values: Sequence[float]) -> str:
    return ",".join(str(int(v)) if float(v).is_integer() else f"{v:g}" for v in values)


def check_swin_sizes(
    img_size: int,
    patch_size: int,
    window_size: int,
    depths: Sequence[int],
    num_heads: Sequence[int] | None = None,
    embed_dim: int | None = None,
) -> list[int]:
    """Check a Swin configuration; return the stage resolutions or raise a ``ValueError`` saying what works.

    Raises if an image side is not positive, if ``depths``/``num_heads`` differ in length, if a stage
    width ``embed_dim * 2**i`` is not divisible by its head count, or if a stage resolution is not an
    integer divisible by ``window_size`` (the message names the nearest valid ``img_size`` values).
    """
    for name, value in (("img_size", img_size), ("patch_size", patch_size), ("window_size", window_size)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if len(depths) == 0 or any(int(d) < 1 for d in depths):
        raise ValueError(f"depths must be a non-empty sequence of positive block counts, got {tuple(depths)}")
    n = len(depths)
    if num_heads is not None:
        if len(num_heads) != n:
            raise ValueError(
                f"num_heads {tuple(num_heads)} has {len(num_heads)} entries but depths {tuple(depths)} has {n}; "
                "give one head count per stage"
            )
        if embed_dim is not None:
            for i, heads in enumerate(num_heads):
                width = embed_dim * 2**i
                if heads < 1 or width % heads:
                    raise ValueError(
                        f"stage {i} has width embed_dim*2**{i} = {width}, not divisible by num_heads[{i}] = {heads}; "
                        "choose head counts that divide the stage widths"
                    )
    res = stage_resolutions(img_size, patch_size, n)
    if all(r.is_integer() and int(r) % window_size == 0 for r in res):
        return [int(r) for r in res]
    near = " or ".join(str(s) for s in valid_img_sizes_near(img_size, patch_size, window_size, n))
    raise ValueError(
        f"img_size {img_size} gives stage resolutions {_fmt(res)} (patch {patch_size}, {n} stages); "
        f"not all integers divisible by window {window_size}; use img_size {near} "
        f"(a multiple of patch*2**(stages-1)*window = {patch_size * 2 ** (n - 1) * window_size}) or change window_size"
    )
