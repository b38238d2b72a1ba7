"""BHSD, the Brain Hemorrhage Segmentation Dataset: ``images/*.nii.gz`` and ``ground truths/*.nii.gz``.

Masks share the image's file name and hold labels 0 background, 1 EDH, 2 IPH, 3 IVH, 4 SAH, 5 SDH.
One manifest row per axial slice (``images/x.nii.gz#k``, 0-based last axis, referenced in place);
the markers of a slice are read off its mask: ``epidural``, ``intraparenchymal``,
``intraventricular``, ``subarachnoid``, ``subdural`` (label present in the slice) and
``hemorrhage`` (any label > 0). Images without a ground truth get no mask and are skipped (their
slices cannot be labelled); one hospital (1); patient id = the file name without ``.nii.gz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtlswin.data.importers.common import ImportResult, rel, require, write_manifest

LABELS = {1: "epidural", 2: "intraparenchymal", 3: "intraventricular", 4: "subarachnoid", 5: "subdural"}
MARKERS = [*LABELS.values(), "hemorrhage"]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def slice_markers(mask_volume: np.ndarray) -> list[dict[str, int]]:
    """Per axial slice (last axis) of an (X, Y, Z) label volume: which labels are present."""
    present = [set(np.unique(mask_volume[:, :, k]).astype(int).tolist()) for k in range(mask_volume.shape[2])]
    return [{name: int(lab in p) for lab, name in LABELS.items()} | {"hemorrhage": int(max(p) > 0)} for p in present]


def import_bhsd(src: str | Path, out: str | Path) -> ImportResult:
    """Write ``out/manifest.csv`` for a BHSD folder ``src``; see the module docstring."""
    import nibabel as nib

    src, out = Path(src), Path(out)
    image_dir = require(src / "images", "BHSD images/*.nii.gz")
    truth_dir = require(src / "ground truths", "BHSD 'ground truths/*.nii.gz'")
    out.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    for image in sorted(image_dir.glob("*.nii*")):
        truth = truth_dir / image.name
        if not truth.is_file():
            skipped.append(f"{image}: no ground truth {truth}")
            continue
        seg = np.asarray(nib.load(truth).dataobj)
        shape = nib.load(image).shape
        if seg.shape != shape:
            skipped.append(f"{image}: image shape {shape} differs from ground truth {seg.shape}")
            continue
        bad = sorted(set(np.unique(seg).astype(int).tolist()) - {0, *LABELS})
        if bad:
            skipped.append(f"{truth}: unknown label value(s) {bad} (expected 0-5)")
            continue
        for k, labels in enumerate(slice_markers(seg)):
            records.append({
                "image": f"{rel(image, out)}#{k}", "mask": f"{rel(truth, out)}#{k}",
                "patient_id": _stem(image), "hospital": 1, **labels,
            })  # fmt: skip
    return ImportResult(write_manifest(records, out, MARKERS), len(records), skipped=skipped)
