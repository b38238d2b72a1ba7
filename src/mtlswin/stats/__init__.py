"""The statistics of the project, at the bottom layer (numpy, scipy and statsmodels only).

- :mod:`.intervals`: the one bootstrap (by slice or by patient), the AUC, and the claims' seed-aware interval
  with Welch-Satterthwaite degrees of freedom;
- :mod:`.power`: the seeds a claim needs (statsmodels' power of the one-sample t), the sd's upper bound;
- :mod:`.sequential`: Lan-DeMets O'Brien-Fleming boundaries, on the t scale, and the group-sequential Holm
  procedure of ``reproduce --until-decided``;
- :mod:`.multiplicity`: Holm across the primary claims of a fixed-size experiment.
"""

from mtlswin.stats.intervals import (
    SeedInterval,
    bootstrap_ci,
    fast_auc,
    percentile_interval,
    resample_indices,
    satterthwaite_df,
    seed_interval,
    seed_statistics,
)
from mtlswin.stats.multiplicity import holm
from mtlswin.stats.power import sd_upper, seeds_needed, t_power
from mtlswin.stats.sequential import look_levels, obf_boundaries, obf_spending, sequential_holm

__all__ = [
    "SeedInterval",
    "bootstrap_ci",
    "fast_auc",
    "holm",
    "look_levels",
    "obf_boundaries",
    "obf_spending",
    "percentile_interval",
    "resample_indices",
    "satterthwaite_df",
    "sd_upper",
    "seed_interval",
    "seed_statistics",
    "seeds_needed",
    "sequential_holm",
    "t_power",
]
