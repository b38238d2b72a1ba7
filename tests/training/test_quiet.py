"""Lightning's noise is dropped inside quiet_lightning only; other messages and warnings still show."""

from __future__ import annotations

import logging
import warnings

from mtlswin.training.quiet import quiet_lightning


def _emit(caplog) -> tuple[list[str], list[str]]:
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_lightning():
            logging.getLogger("lightning.fabric.utilities.seed").info("[rank: 0] Seed set to 3")
            logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False, used: False")
            logging.getLogger("lightning.pytorch.utilities.rank_zero").info("Restoring states from the checkpoint")
            warnings.warn("Found 128 module(s) in eval mode at the start of training. This may ...", stacklevel=1)
            warnings.warn("a warning of ours", stacklevel=1)
    return [r.getMessage() for r in caplog.records], [str(w.message) for w in caught]


def test_noise_is_dropped_and_the_rest_kept(caplog):
    caplog.set_level(logging.INFO)
    messages, caught = _emit(caplog)
    assert messages == ["Restoring states from the checkpoint"]
    assert caught == ["a warning of ours"]
    # outside the context nothing is filtered
    logging.getLogger("lightning.fabric.utilities.seed").info("Seed set to 3")
    assert caplog.records[-1].getMessage() == "Seed set to 3"
