"""RSNA Intracranial Hemorrhage Detection (Kaggle 2019): ``stage_2_train.csv`` + one DICOM per slice.

The CSV has rows ``ID_<hex>_<subtype>,Label`` with subtypes epidural, intraparenchymal,
intraventricular, subarachnoid, subdural, any; some rows are duplicated (the same ID and subtype
twice): duplicates are dropped (first kept), and an ID whose duplicate rows disagree is skipped.
Images are ``<images>/ID_<hex>.dcm`` (default ``SRC/stage_2_train``), referenced in place. The
patient id comes from each DICOM's PatientID header (read without pixel data); slices whose file
is missing or unreadable are skipped and listed. One hospital (1); no masks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mtlswin.data.importers.common import ImportResult, rel, require, write_manifest

CSV_NAME = "stage_2_train.csv"
MARKERS = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]


def read_labels(csv: Path) -> tuple[pd.DataFrame, list[str]]:
    """The label table: one row per image ID (index), one 0/1 column per subtype; plus notes."""
    raw = pd.read_csv(csv)
    if list(raw.columns[:2]) != ["ID", "Label"]:
        raise ValueError(f"{csv}: expected columns ID, Label, got {list(raw.columns)}")
    parts = raw["ID"].str.rsplit("_", n=1, expand=True)
    raw = raw.assign(image_id=parts[0], subtype=parts[1])
    unknown = sorted(set(raw["subtype"]) - set(MARKERS))
    if unknown:
        raise ValueError(f"{csv}: unknown subtype(s) {unknown}; expected {MARKERS}")
    raw = raw.drop_duplicates(["image_id", "subtype", "Label"])
    conflicts = sorted(raw.loc[raw.duplicated(["image_id", "subtype"], keep=False), "image_id"].unique())
    raw = raw[~raw["image_id"].isin(conflicts)]
    table = raw.pivot(index="image_id", columns="subtype", values="Label")
    incomplete = table.index[table.isna().any(axis=1)].tolist()
    table = table.dropna().astype(int)[MARKERS]
    notes = [f"{i}: duplicate rows with different labels" for i in conflicts]
    notes += [f"{i}: not every subtype labelled" for i in incomplete]
    return table, notes


def import_rsna(src: str | Path, out: str | Path, images: str | Path | None = None) -> ImportResult:
    """Write ``out/manifest.csv`` for the RSNA ICH training set in ``src``; see the module docstring."""
    import pydicom

    src, out = Path(src), Path(out)
    images = Path(images) if images else src / "stage_2_train"
    table, skipped = read_labels(require(src / CSV_NAME, "the RSNA folder with stage_2_train.csv"))
    require(images, "the folder of ID_<hex>.dcm files (stage_2_train)")
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for image_id, labels in table.iterrows():
        path = images / f"{image_id}.dcm"
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
        except Exception as err:  # missing or unreadable file: listed, not fatal
            skipped.append(f"{path}: {type(err).__name__}: {err}")
            continue
        records.append({
            "image": rel(path, out), "mask": "", "patient_id": str(ds.get("PatientID", image_id)),
            "hospital": 1, **labels.to_dict(),
        })  # fmt: skip
    return ImportResult(write_manifest(records, out, MARKERS), len(records), skipped=skipped)
