"""Which claims form the family that a correction covers, and their verdicts adjusted for multiplicity.

An experiment tests 7 to 44 claims, each with its own 95% interval; some will exclude zero by chance. Each preset
names its **primary** claims (:attr:`mtlswin.pipeline.claims.Claim.role`): the demo's are MTL-Swin-Unet (cls+seg)
and Joint-Swin against Swin on test-B AUC, the methods preset's each method against Swin on the trap test set's
AUC. Holm's step-down correction (:func:`mtlswin.stats.holm`) across them gives the adjusted verdicts: a primary
claim *held* (or *did not hold*) after adjustment only when Holm rejects "no difference" and the estimate lies on
the stated (or the other) side.

The **positive control** (the demo's: Swin's A - B drop, the shortcut itself) is tested at full alpha outside the
family: it is not a claim about the paper's methods but a check that this experiment can see the effect every
claim rests on, and putting it in the family would only spend alpha on a test expected to succeed. Its adjusted
verdict equals its verdict; if it is not *held*, the report says the experiment failed its control. The other
claims are **secondary**: reported with their unadjusted verdicts, to be read as exploratory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtlswin.pipeline.claims import verdict
from mtlswin.stats import holm

__all__ = ["SECONDARY", "adjusted_verdicts", "decision"]

SECONDARY = "secondary (not adjusted)"


def decision(rejected: bool, estimate: float, sign: int) -> str:
    """``held`` / ``did not hold`` for a rejected hypothesis of no difference (by the estimate's side), else
    ``inconclusive``."""
    if not rejected or not np.isfinite(estimate):
        return "inconclusive"
    return "held" if (estimate > 0) == (sign > 0) else "did not hold"


def adjusted_verdicts(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """``table`` (:func:`mtlswin.pipeline.claims.evaluate_claims`) with ``p_holm`` (Holm-adjusted p of the primary
    claims) and ``verdict_adjusted`` (primary: Holm's; control: the unadjusted verdict; secondary: marked so)."""
    out = table.copy()
    if out.empty:
        return out.assign(p_holm=pd.Series(dtype=float), verdict_adjusted=pd.Series(dtype=str))
    roles = out["role"] if "role" in out else pd.Series("secondary", index=out.index)
    primary = (roles == "primary").to_numpy()
    out["p_holm"] = np.nan
    out["verdict_adjusted"] = SECONDARY
    if primary.any():
        rejected, adjusted = holm(out.loc[primary, "p"].to_numpy(dtype=float), alpha)
        out.loc[primary, "p_holm"] = adjusted
        out.loc[primary, "verdict_adjusted"] = [
            decision(r, e, s) if int(n) >= 2 else verdict(np.nan, np.nan, s, int(n))
            for r, e, s, n in zip(rejected, out.loc[primary, "estimate"], out.loc[primary, "sign"],
                                  out.loc[primary, "seeds"])
        ]  # fmt: skip
    control = (roles == "control").to_numpy()
    out.loc[control, "verdict_adjusted"] = out.loc[control, "verdict"]
    return out
