"""Scanner/protocol profiles of the eleven synthetic hospitals and the data-set presets.

Hospitals 1-4 provide hematoma masks and carry the spurious cue (the paper's training hospitals);
hospitals 5-11 have no masks and an independent cue (the covariate-shifted test hospitals). Their
profiles differ in noise, reconstruction kernel, calibration offset, field of view and patient
positioning, so that hospitals 5-11 are a moderate covariate shift from hospitals 1-4.

Optional trap hospitals (``SynthConfig.trap_hospitals``), numbered 12, 13, ..., reuse the profiles of
hospitals 1-4 in turn (12 -> 1, 13 -> 2, ...; only the name and number differ), so that a trap slice
differs from a training slice in nothing but the sign of the cue-label correlation (Bissoto et al.).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

N_HOSPITALS = 11
MASK_HOSPITALS = (1, 2, 3, 4)
FIRST_TRAP_HOSPITAL = N_HOSPITALS + 1  # trap hospitals are numbered 12, 13, ...


@dataclass(frozen=True)
class ScannerProfile:
    """Acquisition and reconstruction settings of one hospital.

    Attributes:
        hospital: hospital number 1-11.
        name: InstitutionName written to the DICOM files.
        manufacturer: Manufacturer / model written to the DICOM files.
        kernel: ConvolutionKernel name (soft kernels blur more and are less noisy).
        noise_hu: standard deviation of the image noise in HU.
        noise_corr_mm: correlation length (Gaussian sigma, mm) of the noise.
        blur_mm: partial-volume / kernel blur (Gaussian sigma, mm) of the clean image.
        hu_offset: calibration offset added to every pixel, HU (kept within +-2 HU).
        fov_mm: reconstruction field of view; pixel spacing = fov_mm / size.
        slice_mm: slice thickness = spacing between consecutive slices, mm.
        rotation_deg: standard deviation of the in-plane head rotation, degrees.
        shift_mm: standard deviation of the in-plane head shift, mm.
        fov_circle: pixels outside the reconstruction circle are padded with -1024 HU.
    """

    hospital: int
    name: str
    manufacturer: str
    kernel: str
    noise_hu: float
    noise_corr_mm: float
    blur_mm: float
    hu_offset: float
    fov_mm: float
    slice_mm: float
    rotation_deg: float
    shift_mm: float
    fov_circle: bool


def _profile(h: int, vendor: str, kernel: str, noise: float, corr: float, blur: float, offset: float, fov: float,
             slice_mm: float, rot: float, shift: float, circle: bool) -> ScannerProfile:  # fmt: skip
    return ScannerProfile(h, f"Synthetic Hospital {h:02d}", vendor, kernel, noise, corr, blur, offset, fov, slice_mm,
                          rot, shift, circle)  # fmt: skip


# Hospitals 1-4: similar modern scanners, soft brain kernels. 5-11: more varied (sharper kernels,
# more noise, other fields of view, sloppier positioning).
PROFILES: dict[int, ScannerProfile] = {
    p.hospital: p
    for p in (
        _profile(1, "SynthCT Aquila 64", "FC21", 4.0, 0.9, 0.7, 0.0, 230.0, 5.0, 3.0, 4.0, True),
        _profile(2, "SynthCT Aquila 64", "FC21", 4.5, 0.9, 0.7, 1.0, 240.0, 5.0, 3.0, 4.0, True),
        _profile(3, "SynthCT Orion 128", "H30s", 3.5, 1.0, 0.8, -1.0, 220.0, 5.0, 4.0, 5.0, False),
        _profile(4, "SynthCT Orion 128", "H31s", 5.0, 0.8, 0.6, 0.5, 235.0, 5.0, 4.0, 5.0, False),
        _profile(5, "SynthCT Lyra 16", "B45f", 7.0, 0.6, 0.45, 2.0, 250.0, 5.0, 7.0, 8.0, True),
        _profile(6, "SynthCT Vega 320", "FC26", 5.5, 0.7, 0.5, -2.0, 210.0, 4.0, 6.0, 7.0, False),
        _profile(7, "SynthCT Lyra 16", "B60s", 8.0, 0.5, 0.4, 1.5, 240.0, 5.0, 8.0, 8.0, True),
        _profile(8, "SynthCT Deneb 64", "STANDARD", 4.5, 1.2, 1.0, -1.5, 260.0, 6.0, 6.0, 9.0, False),
        _profile(9, "SynthCT Deneb 64", "SOFT", 3.0, 1.4, 1.2, 2.0, 225.0, 5.0, 5.0, 6.0, True),
        _profile(10, "SynthCT Vega 320", "FC64", 6.5, 0.6, 0.5, -0.5, 245.0, 4.0, 9.0, 10.0, False),
        _profile(11, "SynthCT Altair 32", "UB", 6.0, 0.8, 0.6, 1.0, 230.0, 5.0, 7.0, 8.0, True),
    )
}


def profile_of(hospital: int) -> ScannerProfile:
    """The profile of ``hospital``: 1-11 from ``PROFILES``; a trap hospital (12, ...) copies hospital
    ``MASK_HOSPITALS[(hospital - 12) % 4]`` under its own number and name."""
    if hospital in PROFILES:
        return PROFILES[hospital]
    if hospital < FIRST_TRAP_HOSPITAL:
        raise ValueError(f"hospital {hospital} is not a hospital 1-{N_HOSPITALS} or a trap hospital (>= 12)")
    base = PROFILES[MASK_HOSPITALS[(hospital - FIRST_TRAP_HOSPITAL) % len(MASK_HOSPITALS)]]
    return replace(base, hospital=hospital, name=f"Synthetic Hospital {hospital:02d}")


def trap_counts(n_hospitals: int, slices: int) -> tuple[int, ...]:
    """``slices`` split as evenly as possible over ``n_hospitals`` trap hospitals (the first ones get the rest)."""
    if n_hospitals < 0:
        raise ValueError(f"trap_hospitals={n_hospitals} must be >= 0")
    if n_hospitals and slices < n_hospitals:
        raise ValueError(
            f"trap_slices={slices} is too small: need at least one slice per trap hospital ({n_hospitals})"
        )
    if not n_hospitals:
        return ()
    q, r = divmod(int(slices), n_hospitals)
    return tuple(q + (i < r) for i in range(n_hospitals))


# Slices per hospital. `paper`: 11,780 slices, 9,912 in hospitals 1-4, 1,868 in 5-11 (hospital 1
# holds 1,790, so the paper's test A, 10% of hospital 1, is 179 slices). `demo`: 1,400 slices,
# hospital 1 holds 420 (test A = 42 slices) and hospitals 5-11 hold 300 (enough for a 42-slice
# test B with the same positive rate).
PRESETS: dict[str, tuple[int, ...]] = {
    "paper": (1790, 3150, 2700, 2272, 420, 350, 300, 260, 220, 180, 138),
    "demo": (420, 280, 220, 180, 60, 50, 45, 40, 40, 35, 30),
}
PRESET_SIZES: dict[str, int] = {"paper": 256, "demo": 256}


def hospital_counts(preset: str, slices: int | None = None) -> tuple[int, ...]:
    """Slices per hospital (1-11) of ``preset``, rescaled to ``slices`` in total if given.

    Rescaling keeps the preset's shares (largest-remainder rounding, so the counts sum exactly to
    ``slices``); every hospital keeps at least one slice when ``slices >= 11``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = np.asarray(PRESETS[preset], dtype=np.float64)
    if slices is None:
        return tuple(int(c) for c in base)
    if slices < N_HOSPITALS:
        raise ValueError(f"slices={slices} is too small: need at least {N_HOSPITALS} (one per hospital)")
    exact = base / base.sum() * slices
    counts = np.maximum(np.floor(exact).astype(int), 1)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while counts.sum() < slices:
        counts[order[i % N_HOSPITALS]] += 1
        i += 1
    while counts.sum() > slices:
        j = int(np.argmax(counts))
        counts[j] -= 1
    return tuple(int(c) for c in counts)
