"""Lightning's messages that tell our users nothing, silenced during our own training runs only.

:func:`quiet_lightning` (a context manager and a decorator) drops, while it is active:

- "Experiment logs directory ... exists and is not empty": the TensorBoard and CSV loggers share
  ``RUN/logs`` by design, so the second one always finds the first one's files (a resumed run's
  ``metrics.csv`` is kept by :func:`mtlswin.training.train.train` itself);
- "The number of training batches (N) is smaller than the logging interval": small data sets; the
  epoch metrics are logged at every epoch end regardless;
- torch's "`isinstance(treespec, LeafSpec)` is deprecated", raised inside Lightning's own code;
- the "Tip: ... litlogger" line Lightning logs when a Trainer is built;
- "GPU available: ...", "TPU available: ...", "HPU available: ..." (which accelerator a run uses is in its
  config) and "Seed set to N" (the seed is in the config too): with several runs side by side
  (``reproduce``) they filled the terminal;
- "Found N module(s) in eval mode at the start of training": Joint-SwinTransformer's frozen encoder is in
  eval mode by design (its batch statistics and dropout must not move);
- "The `srun` command is available on your system but is not used": the cluster environment is chosen, not
  detected (:mod:`mtlswin.training.cluster_env`), but ``Trainer.fit`` without a checkpoint still asks
  ``SLURMEnvironment.detect()`` for an HPC checkpoint, which warns on any machine that has srun.

Each is matched by the start of its message, so every other warning (ours, Lightning's, torch's)
still shows; outside the context nothing is filtered.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["NOISE_WARNINGS", "quiet_lightning"]

NOISE_WARNINGS = (
    r"Experiment logs directory .* exists and is not empty",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Found \d+ module\(s\) in eval mode at the start of training",
    r"The `srun` command is available on your system but is not used",
)
_NOISE_INFO = (
    "💡 Tip: For seamless cloud logging",
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "Seed set to",
)
_LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)  # may carry a "[rank: N] " prefix
        return not any(noise in message for noise in _NOISE_INFO)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence the Lightning messages listed in the module docstring while the block (or function) runs."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_INFO_LOGGERS]
    drop = _DropNoise()
    with warnings.catch_warnings():
        for pattern in NOISE_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            logger.addFilter(drop)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(drop)
