"""The overrides that shrink a paper or demo config to a micro run (32 px, embed 8, a few batches), for tests
that drive ``mtlswin reproduce`` end to end, and the ``--set`` arguments that carry them."""

from __future__ import annotations

MICRO_RUN = [
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "data.batch_size=8",
    "data.num_workers=0",
    "model.img_size=32",
    "model.patch_size=2",
    "model.window_size=2",
    "model.embed_dim=8",
]


def set_args(overrides: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]`` (the CLI takes one override per ``--set``)."""
    return [arg for item in overrides for arg in ("--set", item)]
