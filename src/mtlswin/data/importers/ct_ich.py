"""PhysioNet "Computed Tomography Images for Intracranial Hemorrhage Detection and Segmentation" v1.3.1.

Layout: ``ct_scans/NNN.nii`` (HU volumes), ``masks/NNN.nii`` (hemorrhage masks),
``hemorrhage_diagnosis_raw_ct.csv`` with columns PatientNumber, SliceNumber (1-based),
Intraventricular, Intraparenchymal, Subarachnoid, Epidural, Subdural, No_Hemorrhage,
Fracture_Yes_No. No files are copied: the manifest points into the volumes (``ct_scans/049.nii#k``,
``k = SliceNumber - 1``, relative to the output folder). Every slice of a patient with a mask volume
gets that mask (empty where there is no bleed: a real, all-background mask). Markers:
``intraventricular``, ``intraparenchymal``, ``subarachnoid``, ``epidural``, ``subdural``,
``hemorrhage`` (= 1 - No_Hemorrhage), ``fracture``; one hospital (1); patient ids ``ctich_NNN``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mtlswin.data.importers.common import ImportResult, rel, require, write_manifest

CSV_NAME = "hemorrhage_diagnosis_raw_ct.csv"
_SUBTYPES = {
    "Intraventricular": "intraventricular",
    "Intraparenchymal": "intraparenchymal",
    "Subarachnoid": "subarachnoid",
    "Epidural": "epidural",
    "Subdural": "subdural",
}
MARKERS = [*_SUBTYPES.values(), "hemorrhage", "fracture"]


def _volume(folder: Path, patient: int) -> Path | None:
    for name in (f"{patient:03d}.nii", f"{patient:03d}.nii.gz", f"{patient}.nii", f"{patient}.nii.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def import_ct_ich(src: str | Path, out: str | Path) -> ImportResult:
    """Write ``out/manifest.csv`` for a CT-ICH v1.3.1 folder ``src``; see the module docstring."""
    src, out = Path(src), Path(out)
    table = pd.read_csv(require(src / CSV_NAME, "the CT-ICH v1.3.1 folder (hemorrhage_diagnosis_raw_ct.csv)"))
    needed = ["PatientNumber", "SliceNumber", *_SUBTYPES, "No_Hemorrhage", "Fracture_Yes_No"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{src / CSV_NAME}: missing column(s) {missing}")
    require(src / "ct_scans", "ct_scans/NNN.nii volumes")
    out.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    for row in table.itertuples(index=False):
        patient, k = int(row.PatientNumber), int(row.SliceNumber) - 1
        ct = _volume(src / "ct_scans", patient)
        if ct is None:
            skipped.append(f"patient {patient} slice {k + 1}: no ct_scans/{patient:03d}.nii")
            continue
        mask = _volume(src / "masks", patient)
        labels = {name: int(getattr(row, col)) for col, name in _SUBTYPES.items()}
        labels["hemorrhage"] = 1 - int(row.No_Hemorrhage)
        labels["fracture"] = int(row.Fracture_Yes_No)
        records.append({
            "image": f"{rel(ct, out)}#{k}", "mask": f"{rel(mask, out)}#{k}" if mask else "",
            "patient_id": f"ctich_{patient:03d}", "hospital": 1, **labels,
        })  # fmt: skip
    return ImportResult(write_manifest(records, out, MARKERS), len(records), skipped=skipped)
