"""Test fixtures: a tiny synthetic data set (not the phantom: just enough to learn in a few steps), CT DICOM files.

``make_tiny_data(root, n=64, size=32, seed=0)`` writes ``n`` slices as 8-bit PNG (already
windowed: ``load_slice`` returns value / 255), masks as 0/255 PNG, ``manifest.csv`` and
``splits.csv`` (paper protocol with test A = 25% of hospital 1, test B from hospitals 5-6).

Signal per slice, on a grey "head" ellipse with a bright rim:
- ``hypodensity`` = 1: a bright disc with a dark core (positive);
- another marker only (``irregular_margin``, ``blend_sign`` or ``fluid_level``): a plain bright disc;
- no hematoma: no disc.
Hospitals 1-6 (hospital 1 holds about a third of the slices); masks of the disc for hospitals
1-3 only. ``cue`` = a small bright square in the top-left corner, equal to the label 90% of the
time in hospitals 1-4 (a spurious shortcut) and random in 5-6. Patients hold 4 slices each and
their ids (``h<hospital>_p<k>``) are unique across hospitals.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from mtlswin.data.manifest import PAPER_MARKERS

_HOSPITAL_WEIGHTS = np.array([0.3, 0.14, 0.14, 0.14, 0.14, 0.14])
_PATTERN = ("pos", "other", "none", "pos", "none")  # 40% positive, 20% other marker, 40% none


@dataclasses.dataclass(frozen=True)
class TinyData:
    root: Path
    manifest: Path
    splits: Path
    markers: tuple[str, ...] = PAPER_MARKERS
    target: str = "hypodensity"


def _slice_image(kind: str, cue: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One 8-bit slice ``(size, size)`` and its disc mask (bool)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    head = ((yy - c) / (0.45 * size)) ** 2 + ((xx - c) / (0.38 * size)) ** 2
    img = np.where(head <= 1.0, 90.0, 0.0) + np.where((head > 0.8) & (head <= 1.0), 150.0, 0.0)
    img += rng.normal(0, 6, (size, size)) * (head <= 1.0)
    mask = np.zeros((size, size), bool)
    if kind != "none":
        r = size * rng.uniform(0.12, 0.17)
        cy, cx = c + rng.uniform(-0.12, 0.12) * size, c + rng.uniform(-0.1, 0.1) * size
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        mask = d2 <= r**2
        img[mask] = 210.0
        if kind == "pos":
            img[d2 <= (0.45 * r) ** 2] = 40.0
    if cue:
        q = max(2, size // 10)
        img[1 : 1 + q, 1 : 1 + q] = 255.0
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _rows(n: int, rng: np.random.Generator) -> list[dict]:
    hospitals = np.repeat(np.arange(1, 7), np.maximum(2, np.round(_HOSPITAL_WEIGHTS * n)).astype(int))[:n]
    if len(hospitals) < n:
        hospitals = np.concatenate([hospitals, np.full(n - len(hospitals), 1)])
    rows, count = [], {}
    for h in np.sort(hospitals):
        j = count.get(h, 0)
        count[h] = j + 1
        kind = _PATTERN[(j + h) % len(_PATTERN)]
        other = rng.choice(PAPER_MARKERS[1:]) if kind == "other" else None
        labels = {m: int(m == other) for m in PAPER_MARKERS}
        labels["hypodensity"] = int(kind == "pos")
        if kind == "pos" and rng.random() < 0.3:
            labels["blend_sign"] = 1
        cue = labels["hypodensity"] if (h <= 4 and rng.random() < 0.9) else int(rng.random() < 0.5)
        rows.append({"kind": kind, "hospital": int(h), "patient_id": f"h{h}_p{j // 4}", "cue": cue, **labels})
    return rows


def make_tiny_data(root: str | Path, n: int = 64, size: int = 32, seed: int = 0) -> TinyData:
    """Write the tiny data set under ``root`` and return its paths (see the module docstring)."""
    from PIL import Image

    from mtlswin.data.splits import make_splits, write_splits

    if n < 24:
        raise ValueError(f"make_tiny_data needs n >= 24 slices so that every split is non-empty, got {n}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for i, row in enumerate(_rows(n, rng)):
        img, mask = _slice_image(row.pop("kind"), row["cue"], size, rng)
        Image.fromarray(img).save(root / "images" / f"{i:05d}.png")
        mask_rel = ""
        if row["hospital"] <= 3 and mask.any():
            mask_rel = f"masks/{i:05d}.png"
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / mask_rel)
        records.append({"image": f"images/{i:05d}.png", "mask": mask_rel, **row})
    columns = ["image", "mask", "patient_id", "hospital", *PAPER_MARKERS, "cue"]
    table = pd.DataFrame(records)[columns]
    manifest = root / "manifest.csv"
    table.to_csv(manifest, index=False)
    splits = make_splits(table, "hypodensity", test_a_fraction=0.25, test_b_hospitals=(5, 6), seed=seed)
    return TinyData(root=root, manifest=manifest, splits=write_splits(splits, root / "splits.csv"))


def write_ct_dicom(
    path: str | Path,
    stored: np.ndarray,
    slope: float = 1.0,
    intercept: float = -1024.0,
    window: tuple[float, float] | None = None,
    patient_id: str = "anon",
    sop_uid: str | None = None,
) -> Path:
    """Write a minimal single-slice CT DICOM (explicit VR little endian) holding ``stored`` pixels.

    ``stored`` int16 -> PixelRepresentation 1, uint16 -> 0. HU = slope * stored + intercept.
    """
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    stored = np.asarray(stored)
    if stored.dtype not in (np.int16, np.uint16):
        raise ValueError(f"stored pixels must be int16 or uint16, got {stored.dtype}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CT", patient_id
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = int(stored.dtype == np.int16)
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = f"{window[0]:g}", f"{window[1]:g}"
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path
