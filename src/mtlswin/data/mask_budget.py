"""The mask budget (Saab et al.'s axis): only a share of the training slices with a mask keep it.

``data.mask_fraction = f`` keeps the masks of whole patients, chosen at random, until the kept masked
slices are closest to ``f`` times the train split's masked slices; the other patients' masks are
treated as unknown (``has_mask`` False, mask all zeros: exactly a slice without a mask). Given the
patients with a mask, sorted by id, and ``perm`` a permutation of them drawn with
``default_rng([seed, MASK_BUDGET_STREAM])``, the kept patients are ``perm[:k]`` with

    k = argmin_k | sum_{j<k} n_perm[j] - f * N |      (the smallest such k on a tie)

where ``n_p`` is patient ``p``'s masked slices and ``N = sum_p n_p``; so the kept count is within half
a patient (the largest one) of the target, and with the same seed a smaller budget keeps a subset of
the patients of a larger one (a sweep over ``f`` is nested). The seed is the run's ``train.seed`` (the
data module's ``seed``): runs with different seeds also draw different mask subsets, so a multi-seed
sweep averages over which patients are annotated. ``f = 1`` keeps every mask (the data are unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MASK_BUDGET_STREAM", "kept_masks"]

MASK_BUDGET_STREAM = 0x6D61736B  # "mask": a generator stream of its own, apart from the other draws of the seed


def kept_masks(patient_ids: Sequence[str], has_mask: Sequence[bool], fraction: float, seed: int) -> np.ndarray:
    """Per row, whether its mask is kept under the budget ``fraction`` (see the module docstring).

    Rows without a mask are False (nothing to keep). ``fraction`` is in [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"mask_fraction must be in [0, 1] (1 = every mask), got {fraction}")
    pid = np.asarray(patient_ids, dtype=object).astype(str)
    masked = np.asarray(has_mask, dtype=bool)
    if len(pid) != len(masked):
        raise ValueError(f"{len(pid)} patient ids but {len(masked)} has_mask values")
    if fraction >= 1.0:
        return masked.copy()
    patients, per_patient = np.unique(pid[masked], return_counts=True)  # sorted: independent of row order
    order = np.random.default_rng([int(seed), MASK_BUDGET_STREAM]).permutation(len(patients))
    cumulative = np.concatenate([[0], np.cumsum(per_patient[order])])
    k = int(np.argmin(np.abs(cumulative - fraction * masked.sum())))
    return masked & np.isin(pid, patients[order[:k]])
