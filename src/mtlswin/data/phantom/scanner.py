"""The scanner: partial-volume/kernel blur, Gaussian-correlated noise, calibration offset, int16 HU.

Uses ``scipy.ndimage.gaussian_filter`` for the blur and for colouring white noise; the noise is
rescaled by the filter's exact gain so its standard deviation is the profile's ``noise_hu``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mtlswin.data.phantom.hospitals import ScannerProfile

HU_MIN, HU_MAX = -1024, 3071  # what int16 stored values 0..4095 with intercept -1024 can hold
_TRUNCATE = 4.0  # scipy's default kernel radius, in sigmas


def _gain(sigma: float) -> float:
    """Standard deviation of unit white noise after a 2D Gaussian filter of ``sigma`` pixels.

    Same kernel as ``scipy.ndimage.gaussian_filter``: radius ``int(4 * sigma + 0.5)``, normalised
    weights ``w``; the 2D kernel is separable, so the gain is ``sum(w**2)`` (= sqrt of the square).
    """
    radius = int(_TRUNCATE * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    w /= w.sum()
    return float((w**2).sum())


def acquire(clean: np.ndarray, profile: ScannerProfile, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Turn a clean HU slice into what the scanner writes.

    ``out = round(G_blur * clean + noise_hu * (G_corr * n) / gain + hu_offset)``, clipped to
    [-1024, 3071], with ``n`` white Gaussian noise; outside the reconstruction circle (if the
    profile has one) the padding value -1024.

    Args:
        clean: ``(H, W) float32`` HU; profile: the hospital; spacing: pixel spacing in mm.

    Returns:
        ``(H, W) int16`` HU.
    """
    img = ndimage.gaussian_filter(clean, profile.blur_mm / spacing, truncate=_TRUNCATE)
    sigma = profile.noise_corr_mm / spacing
    noise = rng.standard_normal(clean.shape, dtype=np.float32)
    if sigma >= 0.3:
        noise = ndimage.gaussian_filter(noise, sigma, truncate=_TRUNCATE) / _gain(sigma)
    img = img + profile.noise_hu * noise + profile.hu_offset
    out = np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)
    if profile.fov_circle:
        n = clean.shape[0]
        c = (np.arange(n) - (n - 1) / 2) ** 2
        out[(c[:, None] + c[None, :]) > (n / 2) ** 2] = HU_MIN
    return out
