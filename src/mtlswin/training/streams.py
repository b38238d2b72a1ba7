"""One random generator per source of randomness of a run (``train.rng``), so that rows of a seed can share them.

The sources of a training run and the seed each one starts from:

============  ===========================================================================================
``data``      the phantom draw (``reproduce``: draw ``1000 * master + k`` for seed k, drawn before any run)
              and the mask budget's kept patients (``default_rng([train.seed, MASK_BUDGET_STREAM])``):
              already streams of their own, always ``train.seed``'s, in every mode. They define the data set
              a seed's rows are compared on.
``encoder``   the encoder's initial weights (a model's ``encoder``; the whole model when it has none)
``heads``     everything else the model builds: decoders, task heads, a second (frozen) encoder
``order``     the train batches' order (:class:`~mtlswin.data.sampler.ResumableSampler`, ``seed + epoch``)
``augment``   the augmentation draws, a pure function of (seed, epoch, slice) on the CPU and on the device
``train``     what runs during training on the global generators: drop path and dropout (reseeded per step by
              :class:`~mtlswin.training.module.MTLModule`), DataLoader workers (``seed_everything``)
============  ===========================================================================================

``train.rng``:

- ``shared`` (the default): ``train.seed`` drives every source, as before this option existed; the model is
  built on the global generator right after ``seed_everything(train.seed)``. Runs are bit-identical to those
  of earlier versions, and a config that does not set ``rng`` keeps its digest.
- ``paired``: each source its own seed, derived from ``train.seed`` and the source's name (:func:`stream_seed`).
  Two rows of one seed (Swin and MTL-Swin-Unet with the same encoder settings) start from the same encoder
  weights and see the same batches in the same order with the same augmentation; their heads differ as their
  architectures do.
- ``independent``: as ``paired`` with the run's name (``output.name``; in ``reproduce`` ``<row>-seed<k>``) mixed
  into each key, so the rows of a seed share no source but the data: the control for ``paired``.

Resume needs nothing more: the order and augmentation are pure functions of their seed and the epoch, and the
global generators (``train``) are reseeded per step and saved with every checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mtlswin.config import RNG_MODES, Config

__all__ = ["SOURCES", "Streams", "build_with_streams", "config_streams", "run_streams", "stream_seed"]

SOURCES = ("encoder", "heads", "order", "augment", "train")


def _tag(text: str) -> int:
    """A stable 32-bit number of ``text`` (Python's ``hash`` of a string changes between processes)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def stream_seed(seed: int, source: str, key: str = "") -> int:
    """The seed of ``source`` for a run of ``seed``: ``SeedSequence(seed, spawn_key=(tag(source)[, tag(key)]))``,
    32 bits (what ``seed_everything`` takes). ``key`` is mixed in for ``independent``."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    spawn = (_tag(source),) if not key else (_tag(source), _tag(key))
    return int(np.random.SeedSequence(int(seed), spawn_key=spawn).generate_state(1, np.uint32)[0])


@dataclass(frozen=True)
class Streams:
    """The seed of every source (:data:`SOURCES`) of one run; ``mode`` is ``train.rng``."""

    mode: str
    encoder: int
    heads: int
    order: int
    augment: int
    train: int


def run_streams(seed: int, mode: str = "shared", name: str = "") -> Streams:
    """The streams of a run of ``seed`` under ``train.rng = mode``; ``name`` (the run's) is used by ``independent``."""
    if mode not in RNG_MODES:
        raise ValueError(f"train.rng must be one of {', '.join(map(repr, RNG_MODES))}, got {mode!r}")
    if mode == "shared":
        return Streams(mode, *(int(seed),) * len(SOURCES))
    key = name if mode == "independent" else ""
    return Streams(mode, *(stream_seed(seed, source, key) for source in SOURCES))


def config_streams(config: Config) -> Streams:
    """The streams of the run ``config`` describes (``train.seed``, ``train.rng``, ``output.name``)."""
    return run_streams(config.train.seed, config.train.rng, config.output.name or "")


def build_with_streams(build: Callable[[], nn.Module], streams: Streams) -> nn.Module:
    """``build()`` with the encoder's weights from the ``encoder`` stream and the rest from ``heads``.

    ``shared``: ``build()`` on the global generator as it stands (seeded by the caller). Otherwise the model is
    built twice, each time on a forked global generator: once under ``encoder``, from which the encoder is kept
    (every Swin model builds its encoder first, so its weights depend only on the encoder settings and this
    seed: a Swin and an MTL-Swin-Unet of one seed get the same encoder), and once under ``heads``, which gives
    everything else; the first build's encoder weights are copied into the second. A model without an
    ``encoder`` is built once, under ``encoder``. The global generators are left as they were.
    """
    if streams.mode == "shared":
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(streams.encoder)
        reference = build()
        encoder = getattr(reference, "encoder", None)
        if not isinstance(encoder, nn.Module):
            return reference
        torch.manual_seed(streams.heads)
        model = build()
    model.encoder.load_state_dict(encoder.state_dict())
    return model
