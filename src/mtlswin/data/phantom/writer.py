"""Write the phantom: one DICOM file per slice, PNG masks, the manifest CSV and a summary JSON.

Layout under ``OUT``::

    manifest.csv                     image, mask, patient_id, hospital, <4 markers>, cue
    phantom.json                     the config and the realised counts / prevalences / cue phi
    images/h01/h01p0001/0001.dcm     CT Image Storage, int16, HU = stored + RescaleIntercept (-1024)
    masks/h01/h01p0001/0001.png      8-bit PNG, 255 = hematoma, 0 = background (hospitals 1-4,
                                     slices that show a hematoma; other rows have an empty mask cell)
    twins/h01/h01p0001/0001.dcm      with ``twin_hospitals``: the slice's counterfactual twin (cue flipped,
                                     all else identical), named in the manifest's ``twin`` column
    images/h12/..., masks/h12/..., twins/h12/...   with ``trap_hospitals``: the trap hospitals 12, ...
                                     (cue anti-correlated with the label; masks and a twin for every slice)

Nothing depends on the clock or the machine: UIDs are ``2.25.<hash>`` of the config and the slice
(pydicom's ``generate_uid`` with entropy sources), so the same config writes byte-identical files.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from tqdm import tqdm

from mtlswin.data.phantom.cue import phi
from mtlswin.data.phantom.generate import MARKERS, SliceRecord, SynthConfig, iter_hospital, iter_slices
from mtlswin.data.phantom.hospitals import profile_of
from mtlswin.io import atomic_path, atomic_write_text

MANIFEST_COLUMNS = ("image", "mask", "patient_id", "hospital", *MARKERS, "cue")
RESCALE_INTERCEPT = -1024
MASK_VALUE = 255


def _uid(config: SynthConfig, *parts: object) -> str:
    """A UID from the config without its trap fields and ``test_scale`` (hospitals 1-11 keep their UIDs when trap
    hospitals are added, hospitals 1-4 when the test hospitals are scaled; a trap slice's ``parts`` carry the
    trap fields, a scaled hospital's ``test_scale``)."""
    key = json.dumps(config.identity(trap=False, scale=False), sort_keys=True)
    return generate_uid(prefix="2.25.", entropy_srcs=["mtlswin-phantom", key, *map(str, parts)])


def dicom_dataset(rec: SliceRecord, config: SynthConfig, twin: bool = False) -> Dataset:
    """The DICOM data set of one slice (CT Image Storage, explicit VR little endian); ``twin``: of its twin."""
    profile = profile_of(rec.hospital)
    trap = (config.trap_hospitals, config.trap_slices) if config.is_trap(rec.hospital) else ()
    trap += ("test_scale", config.test_scale) if config.is_scaled(rec.hospital) else ()  # not a draw of scale 1's
    sop = _uid(config, rec.patient_id, rec.instance, "sop", *(("twin",) if twin else ()), *trap)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.StudyInstanceUID = _uid(config, rec.patient_id, "study", *trap)
    ds.SeriesInstanceUID = _uid(config, rec.patient_id, "series", *trap)
    ds.FrameOfReferenceUID = _uid(config, rec.patient_id, "frame", *trap)
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientID, ds.PatientName = rec.patient_id, f"PHANTOM^{rec.patient_id.upper()}"
    ds.StudyDate = ds.SeriesDate = "20240101"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, rec.instance
    ds.InstitutionName, ds.Manufacturer = profile.name, "mtlswin synthetic phantom"
    ds.ManufacturerModelName, ds.ConvolutionKernel, ds.KVP = profile.manufacturer, profile.kernel, 120
    rows, cols = rec.hu.shape
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [f"{rec.spacing:.6g}", f"{rec.spacing:.6g}"]
    ds.SliceThickness = f"{profile.slice_mm:g}"
    ds.SliceLocation = f"{rec.z:.3f}"
    corner = -(cols - 1) / 2 * rec.spacing
    ds.ImagePositionPatient = [f"{corner:.4f}", f"{corner:.4f}", f"{rec.z:.3f}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = RESCALE_INTERCEPT, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 80
    hu = rec.twin_hu if twin else rec.hu
    ds.PixelData = (hu.astype(np.int32) - RESCALE_INTERCEPT).astype("<i2").tobytes()
    return ds


def write_slice(rec: SliceRecord, config: SynthConfig, out: Path) -> dict[str, object]:
    """Write one slice's DICOM (and mask) under ``out``; return its manifest row."""
    rel = Path("images") / f"h{rec.hospital:02d}" / rec.patient_id / f"{rec.instance:04d}.dcm"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    dicom_dataset(rec, config).save_as(out / rel, enforce_file_format=True)
    mask_rel = ""
    if rec.has_mask_file:
        mrel = Path("masks") / f"h{rec.hospital:02d}" / rec.patient_id / f"{rec.instance:04d}.png"
        (out / mrel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rec.mask.astype(np.uint8) * MASK_VALUE).save(out / mrel)
        mask_rel = mrel.as_posix()
    row = {"image": rel.as_posix(), "mask": mask_rel, "patient_id": rec.patient_id, "hospital": rec.hospital}
    row.update({m: rec.labels[m] for m in MARKERS})
    row["cue"] = rec.cue
    if config.twin_hospitals or config.trap_hospitals:
        row["twin"] = ""
        if rec.twin_hu is not None:
            trel = Path("twins") / rel.relative_to("images")
            (out / trel).parent.mkdir(parents=True, exist_ok=True)
            dicom_dataset(rec, config, twin=True).save_as(out / trel, enforce_file_format=True)
            row["twin"] = trel.as_posix()
    return row


def summarize(rows: list[dict[str, object]], config: SynthConfig) -> dict[str, object]:
    """Realised counts, prevalences and cue-label phi (hospitals with / without the correlated cue, and the
    trap hospitals when there are any)."""
    hosp = np.array([r["hospital"] for r in rows])
    lab = {m: np.array([r[m] for r in rows]) for m in MARKERS}
    cue = np.array([r["cue"] for r in rows])
    hem = np.array([r["mask"] != "" or r["hospital"] not in config.mask_hospitals for r in rows])
    corr = np.isin(hosp, config.cue_hospitals)
    trap = np.array([config.is_trap(int(h)) for h in hosp], dtype=bool)
    other = ~corr & ~trap
    summary = {
        "slices": len(rows),
        "per_hospital": {int(h): int((hosp == h).sum()) for h in np.unique(hosp)},
        "patients": len({r["patient_id"] for r in rows}),
        "prevalence": {m: float(v.mean()) for m, v in lab.items()},
        "masks": int(sum(r["mask"] != "" for r in rows)),
        "cue_rate": float(cue.mean()),
        "cue_phi_correlated_hospitals": phi(cue[corr], lab["hypodensity"][corr]) if corr.any() else None,
        "cue_phi_other_hospitals": phi(cue[other], lab["hypodensity"][other]) if other.any() else None,
        "hematoma_rate_mask_hospitals": float(hem[np.isin(hosp, config.mask_hospitals)].mean()),
    }
    if config.trap_hospitals:
        summary["cue_phi_trap_hospitals"] = phi(cue[trap], lab["hypodensity"][trap]) if trap.any() else None
    return summary


def _write_hospital(config: SynthConfig, out: Path, hospital: int) -> list[dict[str, object]]:
    return [write_slice(rec, config, out) for rec in iter_hospital(config, hospital)]


def write_dataset(config: SynthConfig, out: str | Path, progress: bool = False, workers: int = 1) -> dict[str, object]:
    """Generate and write the whole data set under ``out``; return the summary (also in phantom.json).

    ``workers`` > 1 writes hospitals in that many processes (hospitals are independent, so the files are the
    same bytes as with one process).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hospitals = list(config.hospitals)
    if workers > 1:
        by_size = sorted(hospitals, key=lambda h: -config.counts()[h - 1])  # largest first: balanced workers
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = {h: pool.submit(_write_hospital, config, out, h) for h in by_size}
            per_hospital = {h: f.result() for h, f in futures.items()}
        rows = [row for h in hospitals for row in per_hospital[h]]
    else:
        records = iter_slices(config)
        if progress:
            records = tqdm(records, total=sum(config.counts()), unit="slice", desc="synth")
        rows = [write_slice(rec, config, out) for rec in records]
    summary = summarize(rows, config)
    info = {"config": config.identity(), "image_size": config.image_size, "mask_value": MASK_VALUE, "summary": summary}
    with atomic_path(out / "manifest.csv") as tmp, open(tmp, "w", newline="") as f:  # never half a manifest
        columns = (*MANIFEST_COLUMNS, "twin") if config.twin_hospitals or config.trap_hospitals else MANIFEST_COLUMNS
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(out / "phantom.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    return summary
