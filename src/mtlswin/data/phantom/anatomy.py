"""A per-patient 3D head, rendered on axial slices in Hounsfield units.

Patient frame, millimetres: ``x`` towards the patient's left (image right), ``y`` posterior
(image down), ``z`` cranial, origin at the head's centre. Every structure is a smooth function of
``(x, y, z)``, so adjacent slices of one patient look alike. Written by hand: no library renders
CT anatomy. Layers from outside in: scalp, skull (outer table, diploe, inner table, thickness
varying with angle and level), subarachnoid CSF, cortex (grey-matter ribbon along gyri and sulci),
white matter; inside: deep grey nuclei, ventricles whose size and shape depend on the level, the
interhemispheric fissure and the falx.

The brain-atrophy cue (``atrophy`` in [0, 1+]) widens sulci, the subarachnoid space and the
fissure and enlarges the ventricles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tissue codes of the label map.
AIR, SCALP, SKULL, CSF, GREY, WHITE, FALX, EDEMA, HEMATOMA = range(9)
TISSUE_NAMES = ("air", "scalp", "skull", "csf", "grey", "white", "falx", "edema", "hematoma")
# Clean-image HU ranges per tissue (the issue's ranges; falx/edema are our choice).
HU_RANGES: dict[str, tuple[float, float]] = {
    "air": (-1000.0, -1000.0),
    "scalp": (20.0, 60.0),
    "skull": (700.0, 1900.0),
    "csf": (0.0, 15.0),
    "grey": (37.0, 45.0),
    "white": (20.0, 30.0),
    "falx": (50.0, 70.0),
    "edema": (16.0, 26.0),
    "hematoma": (20.0, 90.0),
}
LEVEL_RANGE = (-0.15, 0.72)  # slice levels, as z / half-height of the head

# Atrophy: how much each structure grows per unit of atrophy.
_SAS_MM = (1.0, 2.2)  # subarachnoid width: normal, added per unit atrophy
_SULCUS_MM = (0.9, 1.9)
_FISSURE_MM = (2.0, 2.5)
_VENTRICLE_GAIN = 0.6


@dataclass(frozen=True)
class Head:
    """Per-patient anatomy parameters (mm and HU); see :func:`sample_head`."""

    a: float  # half width (x)
    b: float  # half length (y)
    c: float  # half height (z)
    egg: float  # posterior widening
    shape_amp: np.ndarray  # (3,) outline harmonics k = 2, 3, 4
    shape_phase: np.ndarray  # (3,)
    scalp_mm: float
    skull_mm: float
    skull_phase: float
    gm_mm: float
    n_sulci: int
    sulcus_phase: np.ndarray  # (4,) phases of the sulcal wobble
    sulcus_depth: np.ndarray  # (n_sulci,) mm
    sulcus_open: np.ndarray  # (n_sulci,) 0..1, how wide each sulcus is without atrophy
    ventricle_scale: float
    atrophy_base: float
    falx_curve: float
    hu_scalp: float
    hu_diploe: float
    hu_table: float
    hu_csf: float
    hu_grey: float
    hu_white: float
    hu_falx: float


def sample_head(rng: np.random.Generator) -> Head:
    """Draw one patient's head. Tissue HU are kept 2 HU inside the ranges of ``HU_RANGES`` so a
    scanner calibration offset of up to +-2 HU keeps the written values in range."""
    n_sulci = int(rng.integers(26, 36))
    return Head(
        a=rng.uniform(66, 76),
        b=rng.uniform(84, 96),
        c=rng.uniform(95, 108),
        egg=rng.uniform(0.03, 0.08),
        shape_amp=rng.uniform(0.0, 0.015, 3),
        shape_phase=rng.uniform(0, 2 * np.pi, 3),
        scalp_mm=rng.uniform(3.5, 6.0),
        skull_mm=rng.uniform(6.0, 9.0),
        skull_phase=rng.uniform(0, 2 * np.pi),
        gm_mm=rng.uniform(2.5, 3.5),
        n_sulci=n_sulci,
        sulcus_phase=rng.uniform(0, 2 * np.pi, 4),
        sulcus_depth=rng.uniform(4.0, 17.0, n_sulci),
        sulcus_open=rng.uniform(0.0, 1.0, n_sulci) ** 2,
        ventricle_scale=rng.uniform(0.9, 1.1),
        atrophy_base=rng.uniform(0.0, 0.12),
        falx_curve=rng.uniform(-0.0015, 0.0015),
        hu_scalp=rng.uniform(26, 52),
        hu_diploe=rng.uniform(760, 1000),
        hu_table=rng.uniform(1550, 1820),
        hu_csf=rng.uniform(4, 10),
        hu_grey=rng.uniform(39.5, 42.5),
        hu_white=rng.uniform(23, 27),
        hu_falx=rng.uniform(55, 65),
    )


def level_bounds(head: Head) -> tuple[float, float]:
    """Lowest and highest slice height (mm) rendered for this head."""
    return LEVEL_RANGE[0] * head.c, LEVEL_RANGE[1] * head.c


def _trap(zeta: float, a: float, b: float, c: float, d: float) -> float:
    """Trapezoid profile over the level: 0 below a, ramps to 1 at b, 1 until c, 0 again at d."""
    if zeta <= a or zeta >= d:
        return 0.0
    if zeta < b:
        return (zeta - a) / (b - a)
    if zeta <= c:
        return 1.0
    return (d - zeta) / (d - c)


# Ventricles and deep nuclei of one hemisphere (x > 0; mirrored for x < 0):
# (centre x, centre y, half-axis x, half-axis y, angle deg, level trapezoid a, b, c, d).
_VENTRICLES = (
    (6.0, 0.0, 4.0, 23.0, 6.0, -0.02, 0.12, 0.32, 0.52),  # body
    (8.0, -19.0, 4.0, 10.0, -30.0, -0.16, -0.1, 0.12, 0.2),  # frontal horn
    (13.0, 21.0, 4.5, 11.0, 25.0, -0.16, -0.1, 0.08, 0.18),  # atrium / occipital horn
)
_THIRD_VENTRICLE = (0.0, 2.0, 1.3, 9.0, 0.0, -0.16, -0.16, 0.0, 0.08)
_NUCLEI = (
    (10.0, 8.0, 7.0, 10.0, 0.0, -0.16, -0.16, 0.04, 0.12),  # thalamus
    (22.0, -3.0, 5.0, 12.0, -12.0, -0.16, -0.16, 0.05, 0.12),  # lentiform nucleus
    (12.5, -17.0, 4.0, 6.0, 0.0, -0.16, -0.12, 0.12, 0.2),  # caudate head
)


def _ellipse_q(x: np.ndarray, y: np.ndarray, spec: tuple, zeta: float, scale_x: float, scale_y: float,
               mirror: bool) -> np.ndarray | None:  # fmt: skip
    """Normalised squared radius of one level-dependent ellipse (< 1 inside), or None if absent."""
    cx, cy, ax, ay, ang, *lev = spec
    p = _trap(zeta, *lev)
    if p <= 0:
        return None
    shrink = 0.25 + 0.75 * p
    ax, ay = ax * shrink * scale_x, ay * shrink * scale_y
    if mirror:
        cx, ang = -cx, -ang
    t = np.deg2rad(ang)
    dx, dy = x - cx * scale_x, y - cy
    u = (np.cos(t) * dx - np.sin(t) * dy) / ax
    v = (np.sin(t) * dx + np.cos(t) * dy) / ay
    return u * u + v * v


@dataclass
class HeadFrame:
    """The z-independent part of a patient's layout on the pixel grid (computed once per patient).

    ``x, y`` patient coordinates (mm), ``r, theta`` polar coordinates, ``outline`` the skin radius
    of the equatorial cross-section along each pixel's ray, ``skull`` the skull thickness there
    (before the level factor), and ``centre`` the index window holding every pixel within 65 mm
    of the head axis (where ventricles and deep nuclei live).
    """

    x: np.ndarray
    y: np.ndarray
    r: np.ndarray
    theta: np.ndarray
    outline: np.ndarray
    skull: np.ndarray
    centre: tuple[slice, slice]


def head_frame(head: Head, x: np.ndarray, y: np.ndarray) -> HeadFrame:
    """Precompute the z-independent layout of ``head`` on the ``(H, W)`` grid ``x, y`` (mm)."""
    theta = np.arctan2(y, x)
    r = np.hypot(x, y)
    sin_t, cos_t = y / np.maximum(r, 1e-6), x / np.maximum(r, 1e-6)
    a_eff = head.a * (1.0 + head.egg * sin_t)
    outline = 1.0 / np.sqrt((cos_t / a_eff) ** 2 + (sin_t / head.b) ** 2)
    for k, (amp, ph) in enumerate(zip(head.shape_amp, head.shape_phase), start=2):
        outline = outline * (1.0 + amp * np.cos(k * theta + ph))
    # Thinner over the temporal squama (lateral), thicker frontal/occipital.
    skull = head.skull_mm * (0.5 + 0.5 * np.abs(sin_t)) * (1.0 + 0.1 * np.cos(3 * theta + head.skull_phase))
    rows, cols = np.nonzero(r < 65.0)
    centre = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    f32 = np.float32
    return HeadFrame(x=x, y=y, r=r.astype(f32), theta=theta.astype(f32), outline=outline.astype(f32),
                     skull=skull.astype(f32), centre=centre)  # fmt: skip


@dataclass
class Radial:
    """Radial layout of one slice: per pixel depth below the skin and skull thickness (mm)."""

    frame: HeadFrame
    depth_out: np.ndarray  # (H, W) depth below the skin, mm
    skull_mm: np.ndarray  # (H, W) skull thickness along that ray, mm
    zeta: float

    @property
    def r(self) -> np.ndarray:
        return self.frame.r

    @property
    def theta(self) -> np.ndarray:
        return self.frame.theta


def radial_layout(head: Head, frame: HeadFrame, z: float) -> Radial:
    """Outline and skull thickness at height ``z``: the head's cross-section shrinks as
    ``sqrt(1 - (z/c)^2)`` and the skull thickens by 15% towards the vertex."""
    zeta = z / head.c
    s = np.sqrt(max(1.0 - zeta * zeta, 0.05))
    return Radial(frame=frame, depth_out=s * frame.outline - frame.r, skull_mm=frame.skull * (1.0 + 0.15 * zeta),
                  zeta=zeta)  # fmt: skip


def hematoma_region(head: Head, rad: Radial, side: int) -> np.ndarray:
    """Pixels a hematoma may occupy: one hemisphere's parenchyma even at full atrophy (bool (H, W)).

    Computed with the most atrophic geometry, so the region does not depend on the cue.
    """
    x, y = rad.frame.x, rad.frame.y
    depth_brain = rad.depth_out - head.scalp_mm - rad.skull_mm - (_SAS_MM[0] + 1.5 * _SAS_MM[1])
    x_mid = head.falx_curve * y * y
    half_fissure = 0.5 * (_FISSURE_MM[0] + 1.5 * _FISSURE_MM[1]) + 1.0
    return (depth_brain > 1.5) & (side * (x - x_mid) > half_fissure)


def render_anatomy(head: Head, rad: Radial, atrophy: float) -> tuple[np.ndarray, np.ndarray]:
    """Clean HU image and tissue label map of one slice.

    Args:
        head: the patient; rad: :func:`radial_layout` of this slice; atrophy: 0 = normal, 1 = the
        atrophy cue.

    Returns:
        ``hu (H, W) float32`` and ``tissue (H, W) uint8`` (codes ``AIR ... FALX``).
    """
    atrophy = atrophy + head.atrophy_base
    d, t_sk = rad.depth_out, rad.skull_mm
    tissue = np.zeros(d.shape, np.uint8)
    hu = np.full(d.shape, -1000.0, np.float32)
    tissue[d >= 0] = SCALP
    hu[d >= 0] = head.hu_scalp
    u = (d - head.scalp_mm) / t_sk  # 0 at the outer table, 1 at the inner table
    skull = (u >= 0) & (u < 1)
    uu = u[skull]
    tables = np.maximum(np.exp(-((uu / 0.28) ** 2)), np.exp(-(((1 - uu) / 0.28) ** 2)))
    tissue[skull] = SKULL
    hu[skull] = head.hu_diploe + (head.hu_table - head.hu_diploe) * tables
    inside = u >= 1
    tissue[inside] = CSF
    depth = d - head.scalp_mm - t_sk - (_SAS_MM[0] + atrophy * _SAS_MM[1])  # below the brain surface
    brain = inside & (depth >= 0)
    tissue[brain] = WHITE
    _paint_cortex(head, rad, depth, brain, tissue, atrophy)
    _paint_deep(head, rad, brain, tissue, atrophy)
    _paint_falx(head, rad.frame.x, rad.frame.y, rad.zeta, inside, tissue, atrophy)
    lut = np.array([-1000, head.hu_scalp, 0, head.hu_csf, head.hu_grey, head.hu_white, head.hu_falx], np.float32)
    soft = (tissue != SKULL) & (tissue != AIR) & (tissue != SCALP)
    hu[soft] = lut[tissue[soft]]
    return hu, tissue


def _paint_deep(head: Head, rad: Radial, brain: np.ndarray, tissue: np.ndarray, atrophy: float) -> None:
    """Deep grey nuclei, then the ventricles (scaled by the patient and the atrophy), in the central window."""
    win = rad.frame.centre
    x, y, sub, inner = rad.frame.x[win], rad.frame.y[win], tissue[win], brain[win]
    for spec in _NUCLEI:
        for mirror in (False, True):
            q = _ellipse_q(x, y, spec, rad.zeta, 1.0, 1.0, mirror)
            if q is not None:
                sub[inner & (q < 1)] = GREY
    v = head.ventricle_scale * (1.0 + _VENTRICLE_GAIN * atrophy)
    for spec in (*_VENTRICLES, _THIRD_VENTRICLE):
        for mirror in (False, True) if spec is not _THIRD_VENTRICLE else (False,):
            q = _ellipse_q(x, y, spec, rad.zeta, v**1.2, v**0.8, mirror)
            if q is not None:
                sub[inner & (q < 1)] = CSF


def _paint_cortex(head: Head, rad: Radial, depth: np.ndarray, brain: np.ndarray, tissue: np.ndarray,
                  atrophy: float) -> None:  # fmt: skip
    """Grey-matter ribbon following gyri, and CSF-filled sulci cut radially into it."""
    sel = brain & (depth < 20.0)
    th, r, dep = rad.theta[sel], rad.r[sel], depth[sel]
    z = rad.zeta * head.c
    ph = head.sulcus_phase
    n = head.n_sulci
    psi = n * th + 1.6 * np.sin(3 * th + ph[0] + 0.05 * z) + 1.1 * np.sin(5 * th + ph[1] - 0.04 * z)
    psi = psi + 0.7 * np.sin(7 * th + ph[2] + 0.03 * z) + 0.02 * z
    psi = psi + 0.12 * dep * np.sin(4 * th + ph[3] + 0.02 * z)  # sulci bend on their way in
    k = np.round(psi / (2 * np.pi))
    arc = np.abs(psi - 2 * np.pi * k) / n * r  # distance to the sulcus' centre line, mm
    idx = k.astype(np.int64) % n
    s_depth = head.sulcus_depth[idx] * (0.8 + 0.2 * np.cos(0.08 * z + ph[3]))
    opening = head.sulcus_open[idx]
    taper = 1.0 - 0.5 * np.clip(dep / s_depth, 0.0, 1.0)  # sulci narrow towards their fundus
    half_w = 0.5 * taper * (2.0 * _SULCUS_MM[0] * opening + atrophy * _SULCUS_MM[1] * (0.5 + opening))
    ribbon = head.gm_mm * (1.0 + 0.3 * np.sin(2.3 * psi))  # gyral crowns thicker than sulcal walls
    grey = (dep < ribbon) | ((arc < half_w + head.gm_mm) & (dep < s_depth + head.gm_mm))
    csf = (arc < half_w) & (dep < s_depth)
    out = tissue[sel]
    out[grey] = GREY
    out[csf] = CSF
    tissue[sel] = out


def _paint_falx(head: Head, x: np.ndarray, y: np.ndarray, zeta: float, inside: np.ndarray, tissue: np.ndarray,
                atrophy: float) -> None:  # fmt: skip
    """Interhemispheric fissure (CSF) with the falx (dense dura) in its middle.

    The fissure runs the full length high up and only in front of and behind the corpus callosum
    and ventricles lower down.
    """
    gap = 32.0 * (1.0 - np.clip((zeta - 0.3) / 0.2, 0.0, 1.0))
    dx = np.abs(x - head.falx_curve * y * y)
    half = 0.5 * (_FISSURE_MM[0] + atrophy * _FISSURE_MM[1])
    fissure = inside & (dx < half) & (np.abs(y) > gap)
    tissue[fissure] = CSF
    tissue[fissure & (dx < 0.6)] = FALX
