"""Orchestration: patients per hospital, slices per patient, hematoma, cue, scanner.

``iter_slices(config)`` yields one :class:`SliceRecord` per slice (in memory, for tests and the
writer); ``mtlswin.data.phantom.writer.write_dataset`` writes them. Every patient draws from its
own generator ``default_rng([seed, hospital, patient])``, and the prevalence controllers only read
counts of earlier patients, so the same config gives the same slices, bit for bit.

Trap hospitals (``trap_hospitals`` > 0; Bissoto et al.'s "trap" test set) are extra hospitals 12, 13, ...
generated exactly like hospitals 1-4 (their scanner profiles in turn, masks, the same prevalence
controllers and cue draw) except that the cue is negated: ``cue_trap = 1 - cue`` with ``cue`` drawn as in
a correlated hospital. Every (label, cue) pair of the training distribution becomes (label, 1 - cue), so
the cue-label phi is ``-spurious`` (exactly, when the realised prevalence equals the controller's), while
the cue's base rate becomes ``1 - P(cue=1)`` of the training hospitals (most trap slices are atrophic).
The alternative, ``1 - label`` with probability ``s`` and Bernoulli(prevalence) otherwise, keeps the base
rate but gives a weaker phi (about -0.74 at s = 0.9, p = 0.12), i.e. the trap would differ in the
correlation's strength too. Every trap slice gets its counterfactual twin, which is then a slice of the
training distribution. Trap hospitals draw their own patients (generators keyed by their own number) and
leave hospitals 1-11 bit for bit as without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from mtlswin.data.phantom import anatomy, cue, hematoma, scanner
from mtlswin.data.phantom.hospitals import (
    FIRST_TRAP_HOSPITAL,
    MASK_HOSPITALS,
    N_HOSPITALS,
    PRESET_SIZES,
    hospital_counts,
    profile_of,
    trap_counts,
)

MARKERS = hematoma.MARKERS


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Attributes:
        preset: ``demo`` or ``paper`` (per-hospital shares; see ``hospitals.PRESETS``).
        slices: total slices (None = the preset's), split over hospitals by the preset's shares.
        size: image side in pixels (None = the preset's, 256).
        seed: master seed; same seed and config give byte-identical files.
        spurious: cue-label correlation in the cue hospitals (0 = none).
        p_hematoma: target fraction of slices showing a hematoma (per hospital).
        p_hypodensity: target fraction of slices labelled hypodensity (per hospital).
        p_blend, p_fluid, p_irregular: chance that a hematoma has that marker.
        slices_per_patient: inclusive range of consecutive slices per patient.
        mask_hospitals: hospitals that provide masks; cue_hospitals: where the cue is correlated.
        twin_hospitals: hospitals whose slices also get a counterfactual twin: the same slice with the
            cue flipped and everything else identical (anatomy, hematoma, scanner noise draw).
        trap_hospitals: extra trap hospitals 12, 13, ... (0 = none): profiles, masks and cue strength of
            hospitals 1-4 but the cue anti-correlated with the label (phi = -spurious); every slice has a twin.
        trap_slices: slices of all trap hospitals together (None = as many as hospitals 5-11 hold, the
            test-B pool), split evenly over them.
        test_scale: the test hospitals (5-11 and the trap hospitals) get ``test_scale`` times their slices (more
            patients: each patient keeps its own generator, so the first ones are those of scale 1); hospitals
            1-4, the training data, stay byte-identical. 1 = the phantom as it was before the option existed.
    """

    preset: str = "demo"
    slices: int | None = None
    size: int | None = None
    seed: int = 0
    spurious: float = 0.9
    p_hematoma: float = 0.30
    p_hypodensity: float = 0.12
    p_blend: float = 0.3
    p_fluid: float = 0.15
    p_irregular: float = 0.5
    slices_per_patient: tuple[int, int] = (6, 14)
    mask_hospitals: tuple[int, ...] = MASK_HOSPITALS
    cue_hospitals: tuple[int, ...] = MASK_HOSPITALS
    twin_hospitals: tuple[int, ...] = ()
    trap_hospitals: int = 0
    trap_slices: int | None = None
    test_scale: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "twin_hospitals", tuple(int(h) for h in self.twin_hospitals))
        bad = [h for h in self.twin_hospitals if not 1 <= h <= N_HOSPITALS]
        if bad:
            raise ValueError(f"twin_hospitals {bad} are not hospitals 1-{N_HOSPITALS}")
        if not 0.0 <= self.spurious <= 1.0:
            raise ValueError(f"spurious={self.spurious} is outside [0, 1]; use e.g. 0.9 or 0 for no cue")
        if not 0.0 < self.p_hypodensity < self.p_hematoma < 1.0:
            raise ValueError(
                f"need 0 < p_hypodensity ({self.p_hypodensity}) < p_hematoma ({self.p_hematoma}) < 1: "
                "every hypodensity slice shows a hematoma"
            )
        if self.size is not None and self.size < 32:
            raise ValueError(f"size={self.size} is too small; use at least 32 pixels (e.g. 128 or 256)")
        lo, hi = self.slices_per_patient
        if not 1 <= lo <= hi:
            raise ValueError(f"slices_per_patient={self.slices_per_patient} must be (lo, hi) with 1 <= lo <= hi")
        if isinstance(self.test_scale, bool) or not isinstance(self.test_scale, int) or self.test_scale < 1:
            raise ValueError(
                f"test_scale={self.test_scale!r} must be an integer >= 1 (1 = the test hospitals as drawn)"
            )
        if self.trap_hospitals < 0:
            raise ValueError(f"trap_hospitals={self.trap_hospitals} must be >= 0 (0 = no trap test set)")
        if self.trap_slices is not None and not 1 <= self.trap_hospitals <= self.trap_slices:
            raise ValueError(
                f"trap_slices={self.trap_slices} needs 1 <= trap_hospitals ({self.trap_hospitals}) <= trap_slices: "
                "set trap_hospitals (e.g. 1) or leave trap_slices unset"
            )

    @property
    def image_size(self) -> int:
        return self.size if self.size is not None else PRESET_SIZES[self.preset]

    @property
    def hospitals(self) -> tuple[int, ...]:
        """Hospital numbers in generation order: 1-11, then the trap hospitals 12, ..."""
        return tuple(range(1, FIRST_TRAP_HOSPITAL + self.trap_hospitals))

    def is_trap(self, hospital: int) -> bool:
        return FIRST_TRAP_HOSPITAL <= hospital < FIRST_TRAP_HOSPITAL + self.trap_hospitals

    def is_scaled(self, hospital: int) -> bool:
        """Whether ``test_scale`` (when not 1) multiplies ``hospital``'s slices: the test hospitals 5-11 and the traps."""
        return self.test_scale != 1 and hospital > max(MASK_HOSPITALS)

    def counts(self) -> tuple[int, ...]:
        """Slices of hospitals 1-11, then of the trap hospitals (``counts()[h - 1]`` is hospital h's)."""
        base = hospital_counts(self.preset, self.slices)
        train = len(MASK_HOSPITALS)  # hospitals 1-4 keep their counts; 5-11 are multiplied by test_scale
        base = base[:train] + tuple(c * self.test_scale for c in base[train:])
        if not self.trap_hospitals:
            return base
        total = self.trap_slices * self.test_scale if self.trap_slices is not None else sum(base[train:])
        return base + trap_counts(self.trap_hospitals, total)

    def identity(self, trap: bool | None = None, scale: bool | None = None) -> dict:
        """``asdict(self)``, without the trap fields when there are no trap hospitals (or ``trap=False``) and
        without ``test_scale`` when it is 1 (or ``scale=False``), so phantoms and UIDs written before the options
        existed stay byte-identical."""
        out = asdict(self)
        if not (self.trap_hospitals if trap is None else trap):
            del out["trap_hospitals"], out["trap_slices"]
        if not (self.test_scale != 1 if scale is None else scale):
            del out["test_scale"]
        return out


@dataclass
class SliceRecord:
    """One generated slice. ``hu`` is what the DICOM file stores (int16 HU); ``clean`` the noiseless,
    unblurred HU; ``tissue`` the ``anatomy`` label map; ``mask`` the hematoma pixels (None when the
    slice shows no hematoma); ``parts`` the ``hematoma.PART_*`` map. ``twin_hu`` / ``twin_clean``: the
    counterfactual twin (cue ``1 - cue``, same anatomy, hematoma and noise draw), or None."""

    hospital: int
    patient_id: str
    patient_index: int
    instance: int
    z: float
    spacing: float
    hu: np.ndarray
    clean: np.ndarray
    tissue: np.ndarray
    mask: np.ndarray | None
    parts: np.ndarray | None
    labels: dict[str, int]
    cue: int
    has_mask_file: bool
    twin_hu: np.ndarray | None = None
    twin_clean: np.ndarray | None = None


@dataclass
class _Counter:
    """Running per-hospital counts read by the prevalence controllers."""

    slices: int = 0
    hematoma: int = 0
    hypodensity: int = 0

    def add(self, rec: SliceRecord) -> None:
        self.slices += 1
        self.hematoma += rec.mask is not None
        self.hypodensity += rec.labels["hypodensity"]


def _controlled(base: float, target: float, achieved: int, total: int, gain: float = 4.0) -> float:
    """Probability nudged towards ``target``: ``clip(base + gain * (target - achieved/total))``."""
    frac = achieved / total if total else target
    return float(np.clip(base + gain * (target - frac), 0.03, 0.97))


def iter_slices(config: SynthConfig) -> Iterator[SliceRecord]:
    """Yield every slice of the data set: hospitals 1-11 (then trap hospitals) in order, patients' slices
    consecutive."""
    for hospital in config.hospitals:
        yield from iter_hospital(config, hospital)


def iter_hospital(config: SynthConfig, hospital: int) -> Iterator[SliceRecord]:
    """The slices of one hospital; hospitals are independent of each other (own generators and counts)."""
    n_slices = config.counts()[hospital - 1]
    counter = _Counter()
    patient = 0
    while counter.slices < n_slices:
        patient += 1
        for rec in _patient_slices(config, hospital, patient, n_slices - counter.slices, counter):
            counter.add(rec)
            yield rec


@dataclass
class _Pose:
    x: np.ndarray  # (H, W) patient-frame coordinates of each pixel, mm
    y: np.ndarray
    ys: np.ndarray  # (H, W) scanner-frame row coordinate, mm (down = dependent side)
    rotation: float
    spacing: float


def _pose(rng: np.random.Generator, profile, size: int) -> _Pose:
    """Pixel grid in the patient frame after the patient's in-plane rotation and shift."""
    spacing = profile.fov_mm / size
    rotation = np.deg2rad(np.clip(rng.normal(0, profile.rotation_deg), -2.5 * profile.rotation_deg,
                                  2.5 * profile.rotation_deg))  # fmt: skip
    max_shift = max(0.0, profile.fov_mm / 2 - 104.0)
    shift = np.clip(rng.normal(0, profile.shift_mm, 2), -max_shift, max_shift)
    c = ((np.arange(size) - (size - 1) / 2) * spacing).astype(np.float32)
    xs, ys = np.meshgrid(c, c)
    dx, dy = xs - shift[0], ys - shift[1]
    cr, sr = np.cos(rotation), np.sin(rotation)
    x = (cr * dx + sr * dy).astype(np.float32)  # scanner = R(rotation) @ patient + shift
    y = (-sr * dx + cr * dy).astype(np.float32)
    return _Pose(x=x, y=y, ys=ys, rotation=float(rotation), spacing=spacing)


def _slab(rng: np.random.Generator, head: anatomy.Head, thick: float, n: int, hem: hematoma.Hematoma | None
          ) -> np.ndarray:  # fmt: skip
    """Heights (mm) of ``n`` consecutive slices; they cover the hematoma's z-range when there is one."""
    lo, hi = anatomy.level_bounds(head)
    lo += rng.uniform(0, thick)
    n_levels = int((hi - lo) // thick) + 1
    n = min(n, n_levels)
    if hem is None:
        k0 = int(rng.integers(0, n_levels - n + 1))
    else:
        h0, h1 = hematoma.z_extent(hem)
        i0 = int(np.clip(np.ceil((h0 - lo) / thick), 0, n_levels - 1))
        i1 = int(np.clip(np.floor((h1 - lo) / thick), i0, n_levels - 1))
        if n >= i1 - i0 + 1:
            first, last = max(0, i1 - n + 1), min(i0, n_levels - n)
        else:
            first, last = i0, i1 - n + 1
        k0 = int(rng.integers(first, max(first, last) + 1))
    return lo + thick * (k0 + np.arange(n))


def _sample_markers(rng: np.random.Generator, config: SynthConfig, counter: _Counter) -> dict[str, bool]:
    share = config.p_hypodensity / config.p_hematoma
    p_hypo = _controlled(min(0.95, 1.6 * share), config.p_hypodensity, counter.hypodensity, counter.slices)
    return {
        "hypodensity": bool(rng.random() < p_hypo),
        "irregular_margin": bool(rng.random() < config.p_irregular),
        "blend_sign": bool(rng.random() < config.p_blend),
        "fluid_level": bool(rng.random() < config.p_fluid),
    }


def _patient_slices(config: SynthConfig, hospital: int, patient: int, remaining: int, counter: _Counter
                    ) -> Iterator[SliceRecord]:  # fmt: skip
    """All slices of one patient (at most ``remaining``)."""
    rng = np.random.default_rng([config.seed, hospital, patient])
    profile = profile_of(hospital)
    trap = config.is_trap(hospital)
    size = config.image_size
    head = anatomy.sample_head(rng)
    pose = _pose(rng, profile, size)
    lo, hi = config.slices_per_patient
    n = min(int(rng.integers(lo, hi + 1)), remaining)
    p_hem = _controlled(0.6, config.p_hematoma, counter.hematoma, counter.slices)
    hem = None
    if rng.random() < p_hem:
        hem = hematoma.sample_hematoma(rng, head.c, _sample_markers(rng, config, counter))
    min_area = max(4, round(10.0 / pose.spacing**2))
    pid = f"h{hospital:02d}p{patient:04d}"
    frame = anatomy.head_frame(head, pose.x, pose.y)
    win = hematoma.window(hem, pose.x, pose.y) if hem is not None else None
    for k, z in enumerate(_slab(rng, head, profile.slice_mm, n, hem), start=1):
        rad = anatomy.radial_layout(head, frame, float(z))
        hs = None
        if hem is not None:
            allowed = anatomy.hematoma_region(head, rad, hem.side)
            hs = hematoma.render_hematoma(hem, pose.x, pose.y, float(z), pose.ys, allowed, pose.rotation,
                                          pose.spacing, min_area, win)  # fmt: skip
        labels = hs.labels if hs is not None else dict.fromkeys(MARKERS, 0)
        prevalence = counter.hypodensity / counter.slices if counter.slices >= 20 else config.p_hypodensity
        slice_cue = cue.draw_cue(rng, labels["hypodensity"], config.spurious, prevalence,
                                 trap or hospital in config.cue_hospitals)  # fmt: skip
        if trap:  # the cue's sign reversed: (label, cue) -> (label, 1 - cue)
            slice_cue = 1 - slice_cue
        clean, tissue = _render(head, rad, slice_cue, hs)
        twin_hu = twin_clean = None
        if trap or hospital in config.twin_hospitals:  # the same noise draw on the cue-flipped slice
            twin_clean = _render(head, rad, 1 - slice_cue, hs)[0]
            twin_hu = scanner.acquire(twin_clean, profile, pose.spacing, _copy_rng(rng))
        hu = scanner.acquire(clean, profile, pose.spacing, rng)
        yield SliceRecord(
            hospital=hospital, patient_id=pid, patient_index=patient, instance=k, z=float(z),
            spacing=pose.spacing, hu=hu, clean=clean, tissue=tissue,
            mask=None if hs is None else hs.mask, parts=None if hs is None else hs.parts,
            labels=dict(labels), cue=slice_cue,
            has_mask_file=hs is not None and (trap or hospital in config.mask_hospitals),
            twin_hu=twin_hu, twin_clean=twin_clean,
        )  # fmt: skip


def _render(head: anatomy.Head, rad: anatomy.Radial, slice_cue: int, hs: hematoma.HematomaSlice | None
            ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Clean HU and tissue map of one slice with the cue's atrophy, the hematoma painted in."""
    clean, tissue = anatomy.render_anatomy(head, rad, cue.ATROPHY_OF_CUE * slice_cue)
    if hs is not None:
        _composite(head, hs, clean, tissue)
    return clean, tissue


def _copy_rng(rng: np.random.Generator) -> np.random.Generator:
    """A generator in the same state that does not advance ``rng``."""
    twin = np.random.Generator(type(rng.bit_generator)())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


def _composite(head: anatomy.Head, hs: hematoma.HematomaSlice, clean: np.ndarray, tissue: np.ndarray) -> None:
    """Paint the oedema rim (over grey/white matter only) and the hematoma into the slice."""
    rim = hs.edema & ((tissue == anatomy.GREY) | (tissue == anatomy.WHITE))
    clean[rim] = head.hu_white - 5.0
    tissue[rim] = anatomy.EDEMA
    clean[hs.mask] = hs.hu[hs.mask]
    tissue[hs.mask] = anatomy.HEMATOMA
