"""Acute intraparenchymal hematomas as 3D blobs, with the four expansion markers.

A hematoma is a perturbed ellipsoid in the patient frame (mm), clipped to one hemisphere's
parenchyma, with base density 40-90 HU (typically 60-80). Markers are drawn per hematoma and may
co-occur; on each slice a marker is labelled only where it is visible (every part it needs covers
at least ``min_area`` pixels); a part too small to be visible is painted over so image and label
agree. Definitions (clean HU, before blur and noise):

- ``hypodensity``: 1-3 hypodense blobs at least 18 HU below the surrounding hematoma (never under
  22 HU), kept ``margin`` pixels inside the hematoma and away from the other markers' parts, so
  they are encapsulated by hematoma of base density or denser.
- ``blend_sign``: an oblique, slightly curved cut splits the hematoma into a hypodense part
  (reaching the border) and a hyperdense part, >= 22 HU apart, with a sharp margin; the cut is at
  least 25 degrees away from horizontal so it is not a fluid level.
- ``fluid_level``: inside an ellipsoidal compartment of the hematoma, a horizontal interface in
  the scanner frame (an image row): hypodense above, hyperdense (dependent) below, >= 22 HU apart.
- ``irregular_margin``: high-frequency lobulation of the border instead of a smooth outline.

Written by hand: no library synthesises hematomas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

MARKERS = ("hypodensity", "irregular_margin", "blend_sign", "fluid_level")
# Codes of the part map inside the hematoma mask.
PART_BASE, PART_BLEND_LOW, PART_BLEND_HIGH, PART_FLUID_LOW, PART_FLUID_HIGH, PART_HYPO = range(1, 7)


@dataclass(frozen=True)
class Hematoma:
    """One hematoma (patient frame, mm and HU) and its markers; see :func:`sample_hematoma`."""

    centre: np.ndarray  # (3,) x, y, z
    radii: np.ndarray  # (3,)
    angle: float  # in-plane rotation, rad
    side: int  # +1 left hemisphere (image right), -1 right
    freqs: np.ndarray  # (K,) border harmonics
    amps: np.ndarray  # (K,)
    phases: np.ndarray  # (K,)
    hu: float
    edema_mm: float
    markers: dict[str, bool]
    blend: tuple[float, float, float, float, float] | None = (
        None  # normal angle (scanner), offset, curvature, d_low, d_high
    )
    fluid: tuple[np.ndarray, float, float, float, float] | None = None  # centre offset, scale, level, d_low, d_high
    blobs: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)  # centre, radii, d_low


def sample_hematoma(rng: np.random.Generator, c: float, markers: dict[str, bool]) -> Hematoma:
    """Draw a hematoma for a head of half-height ``c`` mm with the given markers.

    Locations: deep (basal ganglia / thalamus, low levels) or lobar (higher, more peripheral).
    """
    side = 1 if rng.random() < 0.5 else -1
    if rng.random() < 0.55:  # deep
        centre = np.array([side * rng.uniform(14, 26), rng.uniform(-10, 12), rng.uniform(-0.02, 0.22) * c])
    else:  # lobar
        ang = rng.uniform(-np.pi / 2 + 0.4, np.pi / 2 - 0.4) + (0.0 if side > 0 else np.pi)
        rad = rng.uniform(22, 40)
        centre = np.array([rad * np.cos(ang), rad * np.sin(ang) * 1.3, rng.uniform(0.1, 0.5) * c])
    major = rng.uniform(9, 21)
    centre[0] = side * max(abs(centre[0]), 8.0 + 0.7 * major)
    radii = np.array([major, major * rng.uniform(0.6, 1.0), rng.uniform(7, 17)])
    irregular = markers["irregular_margin"]
    freqs = np.array([2, 3, 4, 5, 7]) if irregular else np.array([2, 3])
    amps = rng.uniform(0.6, 1.0, freqs.size) * (0.3 / freqs + 0.03) if irregular else rng.uniform(0.0, 0.04, 2)
    hu = float(np.clip(rng.normal(70, 6), 48, 84))
    blend = fluid = None
    if markers["blend_sign"]:
        normal = rng.uniform(np.deg2rad(-65), np.deg2rad(65)) + (0.0 if rng.random() < 0.5 else np.pi)
        d_low, d_high = _split_contrast(hu, rng.uniform(16, 28), rng.uniform(6, 12))
        blend = (normal, rng.uniform(0.0, 0.35), rng.uniform(-0.3, 0.3), d_low, d_high)
    if markers["fluid_level"]:
        offset = rng.uniform(-0.15, 0.15, 3) * radii
        d_low, d_high = _split_contrast(hu, rng.uniform(18, 30), rng.uniform(4, 10))
        fluid = (offset, rng.uniform(0.7, 0.9), rng.uniform(-0.4, 0.2), d_low, d_high)
    blobs = []
    if markers["hypodensity"]:
        for _ in range(int(rng.integers(1, 4))):
            off = rng.uniform(-0.3, 0.3, 3) * radii * np.array([1.0, 1.0, 0.6])
            r = rng.uniform(0.25, 0.5) * radii[:2] * rng.uniform(0.7, 1.3, 2)
            r = np.clip(np.append(r, rng.uniform(0.5, 0.9) * radii[2]), 2.5, None)
            d_low = min(rng.uniform(18, 38), hu - 22.0)
            blobs.append((centre + off, r, d_low))
    return Hematoma(centre=centre, radii=radii, angle=rng.uniform(0, np.pi), side=side, freqs=freqs, amps=amps,
                    phases=rng.uniform(0, 2 * np.pi, freqs.size), hu=hu, edema_mm=rng.uniform(0.5, 3.0),
                    markers=dict(markers), blend=blend, fluid=fluid, blobs=blobs)  # fmt: skip


def _split_contrast(hu: float, d_low: float, d_high: float, total: float = 22.0) -> tuple[float, float]:
    """Keep ``hu - d_low >= 22``, ``hu + d_high <= 90`` and ``d_low + d_high >= total``."""
    d_high = min(d_high, 90.0 - hu)
    d_low = min(max(d_low, total - d_high), hu - 22.0)
    return d_low, d_high


def z_extent(h: Hematoma) -> tuple[float, float]:
    """Lowest and highest z (mm) the hematoma can reach."""
    reach = h.radii[2] * (1.0 + h.amps.sum())
    return h.centre[2] - reach, h.centre[2] + reach


@dataclass
class HematomaSlice:
    """The hematoma on one slice: ``mask (H, W) bool``, ``parts (H, W) uint8`` (``PART_*``, 0
    outside), ``hu (H, W) float32`` (valid inside the mask), ``edema (H, W) bool`` and the per-slice
    marker labels."""

    mask: np.ndarray
    parts: np.ndarray
    hu: np.ndarray
    edema: np.ndarray
    labels: dict[str, int]


def _local(h: Hematoma, x: np.ndarray, y: np.ndarray, z: float, centre: np.ndarray, radii: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:  # fmt: skip
    """Coordinates in the (rotated, radius-normalised) frame of an ellipsoid: ux, uy (H, W), uz."""
    ca, sa = np.cos(h.angle), np.sin(h.angle)
    dx, dy = x - centre[0], y - centre[1]
    ux = (ca * dx + sa * dy) / radii[0]
    uy = (-sa * dx + ca * dy) / radii[1]
    return ux, uy, (ux * ux + uy * uy), (z - centre[2]) / radii[2]


def window(h: Hematoma, x: np.ndarray, y: np.ndarray, margin_mm: float = 8.0) -> tuple[slice, slice]:
    """Index window of the ``(H, W)`` grid holding every pixel the hematoma (and its oedema rim) can
    reach on any slice, plus ``margin_mm``; rendering inside it only is what makes slices fast."""
    reach = h.radii[:2].max() * (1.0 + h.amps.sum()) + margin_mm
    rows, cols = np.nonzero((x - h.centre[0]) ** 2 + (y - h.centre[1]) ** 2 < reach * reach)
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def render_hematoma(h: Hematoma, x: np.ndarray, y: np.ndarray, z: float, ys: np.ndarray, allowed: np.ndarray,
                    rotation: float, spacing: float, min_area: int, win: tuple[slice, slice] | None = None
                    ) -> HematomaSlice | None:  # fmt: skip
    """Cut the hematoma with the slice at height ``z``.

    Args:
        x, y: ``(H, W)`` patient coordinates (mm); ys: ``(H, W)`` scanner-frame row coordinate
        (mm, down = dependent side); allowed: parenchyma the hematoma may occupy; rotation: the
        patient's in-plane rotation (rad, patient -> scanner); spacing: pixel spacing (mm);
        min_area: pixels a part needs to count as visible.

        win: render only inside this window (see :func:`window`); results are full size.

    Returns:
        None when fewer than ``min_area`` hematoma pixels fall on this slice.
    """
    if win is not None:
        part = render_hematoma(h, x[win], y[win], z, ys[win], allowed[win], rotation, spacing, min_area)
        if part is None:
            return None
        full = HematomaSlice(mask=np.zeros(x.shape, bool), parts=np.zeros(x.shape, np.uint8),
                             hu=np.zeros(x.shape, np.float32), edema=np.zeros(x.shape, bool), labels=part.labels)  # fmt: skip
        full.mask[win], full.parts[win], full.hu[win], full.edema[win] = part.mask, part.parts, part.hu, part.edema
        return full
    ux, uy, q2, uz = _local(h, x, y, z, h.centre, h.radii)
    if abs(uz) >= 1.0 + h.amps.sum():
        return None
    theta = np.arctan2(uy, ux)
    border = 1.0
    fade = max(0.0, 1.0 - uz * uz)  # lobulation fades towards the poles: no star-shaped caps
    for f, a, p in zip(h.freqs, h.amps, h.phases):
        border = border + fade * a * np.cos(f * theta + p + 1.5 * uz)
    mask = allowed & (q2 + uz * uz < border * border)
    if mask.sum() < min_area:
        return None
    hu = np.full(x.shape, h.hu, np.float32)
    parts = np.where(mask, PART_BASE, 0).astype(np.uint8)
    labels = dict.fromkeys(MARKERS, 0)
    labels["irregular_margin"] = int(h.markers["irregular_margin"] and mask.sum() >= 4 * min_area)
    if h.blend is not None:
        labels["blend_sign"] = _paint_blend(h, x, y, mask, rotation, parts, hu, min_area)
    if h.fluid is not None:
        labels["fluid_level"] = _paint_fluid(h, x, y, z, ys, mask, parts, hu, min_area)
        if labels["blend_sign"]:
            labels["blend_sign"] = _recheck_blend(h, parts, hu, min_area)
    busy = (parts == PART_BLEND_LOW) | (parts == PART_FLUID_LOW) | (parts == PART_FLUID_HIGH)
    if h.blobs:
        labels["hypodensity"] = _paint_hypodense(h, x, y, z, mask, busy, spacing, parts, hu, min_area)
    edema = _edema(mask, allowed, h.edema_mm, spacing)
    return HematomaSlice(mask=mask, parts=parts, hu=hu, edema=edema, labels=labels)


def _paint_blend(h: Hematoma, x: np.ndarray, y: np.ndarray, mask: np.ndarray, rotation: float, parts: np.ndarray,
                 hu: np.ndarray, min_area: int) -> int:  # fmt: skip
    """Blend sign: hypodense part beyond an oblique curved cut, hyperdense part on the other side."""
    normal, offset, curve, d_low, d_high = h.blend
    n_ang = normal - rotation  # the normal was drawn in the scanner frame
    dx, dy = x - h.centre[0], y - h.centre[1]
    scale = h.radii[:2].mean()
    s = (np.cos(n_ang) * dx + np.sin(n_ang) * dy) / scale
    t = (-np.sin(n_ang) * dx + np.cos(n_ang) * dy) / scale
    low = mask & (s + curve * t * t > offset)
    high = mask & ~low
    if low.sum() < min_area or high.sum() < min_area:
        return 0  # one side too small to see: the hematoma stays uniform here
    parts[low], parts[high] = PART_BLEND_LOW, PART_BLEND_HIGH
    hu[low], hu[high] = h.hu - d_low, h.hu + d_high
    return 1


def _recheck_blend(h: Hematoma, parts: np.ndarray, hu: np.ndarray, min_area: int) -> int:
    """After the fluid compartment overwrote part of a blend sign: keep it only if both parts are still
    visible and side by side, otherwise paint what is left of the hypodense part hyperdense."""
    low, high = parts == PART_BLEND_LOW, parts == PART_BLEND_HIGH
    touching = (ndimage.binary_dilation(low) & high).sum()  # the two parts must still share a margin
    if low.sum() >= min_area and high.sum() >= min_area and touching >= 3:
        return 1
    parts[low] = PART_BLEND_HIGH
    hu[low] = h.hu + h.blend[4]
    return 0


def _paint_fluid(h: Hematoma, x: np.ndarray, y: np.ndarray, z: float, ys: np.ndarray, mask: np.ndarray,
                 parts: np.ndarray, hu: np.ndarray, min_area: int) -> int:  # fmt: skip
    """Fluid level: an ellipsoidal compartment split by a horizontal (scanner-frame) line."""
    offset, scale, level, d_low, d_high = h.fluid
    centre = h.centre + offset
    _, _, q2, uz = _local(h, x, y, z, centre, h.radii * scale)
    comp = mask & (q2 + uz * uz < 1.0)
    if comp.sum() < 2 * min_area:
        return 0
    y_level = _fluid_level_row(h, centre, scale, level, ys, x, y)
    low, high = comp & (ys < y_level), comp & (ys >= y_level)
    if low.sum() < min_area or high.sum() < min_area:
        return 0
    parts[low], parts[high] = PART_FLUID_LOW, PART_FLUID_HIGH
    hu[low], hu[high] = h.hu - d_low, h.hu + d_high
    return 1


def _fluid_level_row(h: Hematoma, centre: np.ndarray, scale: float, level: float, ys: np.ndarray, x: np.ndarray,
                     y: np.ndarray) -> float:  # fmt: skip
    """Scanner-frame height (mm) of the fluid level: ``level`` in [-1, 1] of the compartment's
    vertical half-extent below/above its centre (the same on every slice of the patient)."""
    # Scanner row coordinate of the compartment centre, from the nearest pixel's mapping.
    i = np.argmin((x - centre[0]) ** 2 + (y - centre[1]) ** 2)
    half = h.radii[:2].max() * scale
    return float(ys.flat[i]) + level * half


def _paint_hypodense(h: Hematoma, x: np.ndarray, y: np.ndarray, z: float, mask: np.ndarray, busy: np.ndarray,
                     spacing: float, parts: np.ndarray, hu: np.ndarray, min_area: int) -> int:  # fmt: skip
    """Hypodensities: blobs kept ``margin`` pixels inside the hematoma and off the other parts."""
    margin = max(1, round(1.5 / spacing))
    core = ndimage.binary_erosion(mask, iterations=margin) & ~ndimage.binary_dilation(busy, iterations=margin)
    visible = 0
    for centre, radii, d_low in h.blobs:
        ux, uy, q2, uz = _local(h, x, y, z, centre, radii)
        wobble = 1.0 + 0.15 * np.cos(3 * np.arctan2(uy, ux) + centre[0])
        blob = core & (q2 + uz * uz < wobble * wobble)
        if blob.sum() >= min_area:
            parts[blob] = PART_HYPO
            hu[blob] = h.hu - d_low
            visible = 1
    return visible


def _edema(mask: np.ndarray, allowed: np.ndarray, edema_mm: float, spacing: float) -> np.ndarray:
    """Thin perihematomal oedema rim outside the mask (bool (H, W))."""
    width = max(1, round(edema_mm / spacing))
    return ndimage.binary_dilation(mask, iterations=width) & ~mask & allowed
