"""What a weight load did (:class:`LoadReport`), and the one RGB -> gray rule for first-layer kernels.

Both loaders of foreign weights use these: the Swin converters of :mod:`mtlswin.models.conversion.swin`
(ImageNet Swin, the authors' checkpoints) and the strict loader of the CNN baselines in
:mod:`mtlswin.models.conversion.cnn`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

__all__ = ["LoadReport", "gray_kernel"]


@dataclass
class LoadReport:
    """What a load did. ``loaded``/``mirrored``/``kept_init``/``missing`` are keys of our model; ``used``,
    ``unexpected`` and ``ignored`` (key -> reason) are keys of the source; a complete load accounts for
    every source key in exactly one of ``used``, ``ignored`` and ``unexpected``."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ours, should have come from the source, did not
    unexpected: list[str] = field(default_factory=list)  # source keys with no place in our model
    ignored: dict[str, str] = field(default_factory=dict)  # source keys dropped on purpose, with the reason
    mirrored: list[str] = field(default_factory=list)  # decoder keys filled from encoder stages (Swin-Unet init)
    kept_init: list[str] = field(default_factory=list)  # ours, not expected from this format (left at init)
    used: list[str] = field(default_factory=list)  # source keys whose values went into the model
    summed_rgb: list[str] = field(default_factory=list)  # first-layer kernels summed from 3 channels to 1

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unexpected

    def check(self, allow_partial: bool = False) -> LoadReport:
        """Raise ``ValueError`` listing the keys if the load is partial and ``allow_partial`` is False."""
        if self.complete or allow_partial:
            return self
        raise ValueError(
            f"refusing a partial load from {self.source}: {len(self.missing)} missing key(s) "
            f"{self.missing[:20]}{' ...' if len(self.missing) > 20 else ''}, {len(self.unexpected)} unexpected "
            f"key(s) {self.unexpected[:20]}{' ...' if len(self.unexpected) > 20 else ''}. Check the model options "
            "(sizes, tasks) match the checkpoint, or pass allow_partial=True (--allow-partial) to accept it"
        )

    def summary(self) -> str:
        """Human-readable multi-line report (printed by ``mtlswin convert``, logged by the CNN loader)."""
        lines = [
            f"source: {self.source}",
            f"loaded: {len(self.loaded)}",
            f"mirrored (encoder -> decoder): {len(self.mirrored)}",
            f"kept at init: {len(self.kept_init)}",
            f"RGB kernels summed to gray: {self.summed_rgb}",
            f"missing: {len(self.missing)}" + "".join(f"\n  {k}" for k in self.missing),
            f"unexpected: {len(self.unexpected)}" + "".join(f"\n  {k}" for k in self.unexpected),
            f"ignored: {len(self.ignored)}",
        ]
        lines += [f"  {n} x {reason}" for reason, n in sorted(Counter(self.ignored.values()).items())]
        return "\n".join(lines)


def gray_kernel(weight: torch.Tensor, in_chans: int) -> torch.Tensor | None:
    """An RGB kernel ``(O, 3, k, k)`` for a 1-channel layer -> ``(O, 1, k, k)``, summed over the input channels.

    ``conv(gray, sum_c W_c) == conv(repeat(gray, 3), W)``: the model sees what the RGB network saw on a
    gray image. Returns ``None`` when the kernel is not an RGB kernel for a 1-channel layer (nothing to do).
    """
    if weight.ndim == 4 and weight.shape[1] == 3 and in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    return None
