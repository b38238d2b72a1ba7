"""Volumes and series as slices: the one expansion that ``predict`` and ``pretrain`` share.

:func:`expand_slices` turns files and folders into one :class:`SliceInput` per 2-D slice:

- a NIfTI volume (``.nii``/``.nii.gz`` given without ``#k``) -> every slice ``vol.nii.gz#k``, ``k = 0..Z-1``
  along its last (axial) axis (the slice order of :func:`mtlswin.data.readers.load_slice`); the scan is
  the volume, ``slice_index`` is ``k``;
- DICOM files found under a folder -> grouped into series by (folder, ``SeriesInstanceUID``); the slices of
  a series are ordered by ``ImagePositionPatient`` z (else ``InstanceNumber``, else file name) and
  ``slice_index`` is the 0-based position in that order; the scan is the series folder (with
  ``__s<SeriesNumber>`` when one folder holds several series);
- anything else (a PNG, a ``.npy``, a DICOM file given by name, ``vol.nii.gz#k``, a DICOM file whose
  header cannot be read) is a lone slice: ``scan`` and ``slice_index`` are ``None``.

Unreadable volumes (a NIfTI header that does not parse) and volumes of no slice are skipped here, with a line on stderr and a
row of the :class:`~mtlswin.data.inputs.SkipLog`; an unreadable lone slice is found when it is read,
as before. Output names follow :func:`mtlswin.data.inputs.output_name` (volume slices ``<volume>_<k>``)
and are unique (``-2``, ``-3`` for names given twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from mtlswin.data.inputs import SkipLog, find_images, output_name
from mtlswin.data.readers import file_kind, nifti_shape, split_slice

__all__ = ["SliceInput", "expand_slices", "scan_groups"]


@dataclass(frozen=True)
class SliceInput:
    """One 2-D slice to read with ``load_slice(path)``, its unique output ``name``, and the scan it belongs to."""

    path: Path | str  # a file, or "vol.nii.gz#k"
    name: str  # unique output name
    scan: str | None = None  # output name of the volume / series; None for a lone slice
    slice_index: int | None = None  # 0-based position in the scan
    scan_file: str | None = None  # the volume file or the series folder


def _dicom_key(path: Path) -> tuple[str, int | None, tuple] | None:
    """``(SeriesInstanceUID, SeriesNumber, sort key)`` from the header, or None when it cannot be read."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        uid = str(ds.SeriesInstanceUID)
    except Exception:  # an unreadable file stays a lone slice; reading it later records why
        return None
    position = getattr(ds, "ImagePositionPatient", None)
    z = float(position[2]) if position is not None and len(position) == 3 else None
    number = getattr(ds, "InstanceNumber", None)
    series = getattr(ds, "SeriesNumber", None)
    order = (z is None, z or 0.0, number is None, int(number or 0), path.name)
    return uid, None if series is None else int(series), order


def _series_slices(files: list[Path], base: Path) -> list[SliceInput]:
    """DICOM files of one input folder -> slices grouped by series (lone slices for unreadable headers)."""
    groups: dict[tuple[Path, str], list[tuple[tuple, Path, int | None]]] = {}
    out: list[SliceInput] = []
    for f in files:
        key = _dicom_key(f)
        if key is None:
            out.append(SliceInput(f, output_name(f, base)))
            continue
        uid, number, order = key
        groups.setdefault((f.parent, uid), []).append((order, f, number))
    per_folder: dict[Path, int] = {}
    for folder, _ in groups:
        per_folder[folder] = per_folder.get(folder, 0) + 1
    for (folder, _), members in groups.items():
        members.sort(key=lambda m: m[0])
        rel = folder.relative_to(base).as_posix() if folder != base else ""
        scan = rel.replace("/", "__") if rel else base.name
        if per_folder[folder] > 1:
            scan += f"__s{members[0][2] if members[0][2] is not None else len(out)}"
        for k, (_, f, _) in enumerate(members):
            out.append(SliceInput(f, output_name(f, base), scan, k, str(folder)))
    return out


def _expand_one(item: str | Path, skipped: SkipLog) -> list[SliceInput]:
    file, k = split_slice(item)
    found = find_images([item], skipped)
    slices: list[SliceInput] = []
    dicoms: list[Path] = []
    for image in found:
        path = Path(str(image.path))
        if k is None and file_kind(path) == "nifti":
            try:
                depth = nifti_shape(path)[2]
            except ValueError as err:
                skipped.skip(path, str(err))
                continue
            if depth == 0:
                skipped.skip(path, "the NIfTI volume has no slices (its last axis is 0 long)")
                continue
            slices += [SliceInput(f"{path}#{z}", f"{image.name}_{z}", image.name, z, str(path)) for z in range(depth)]
        elif file.is_dir() and file_kind(path) == "dicom":
            dicoms.append(path)
        else:
            slices.append(SliceInput(image.path, image.name))
    if dicoms:
        slices += _series_slices(dicoms, file)
    return slices


def _unique(slices: list[SliceInput]) -> list[SliceInput]:
    taken: dict[str, int] = {}
    scans: dict[tuple[str, str], str] = {}
    scan_taken: dict[str, int] = {}
    out = []
    for s in slices:
        taken[s.name] = taken.get(s.name, 0) + 1
        name = s.name if taken[s.name] == 1 else f"{s.name}-{taken[s.name]}"
        scan = s.scan
        if scan is not None:
            key = (scan, s.scan_file or "")
            if key not in scans:
                scan_taken[scan] = scan_taken.get(scan, 0) + 1
                scans[key] = scan if scan_taken[scan] == 1 else f"{scan}-{scan_taken[scan]}"
            scan = scans[key]
        out.append(replace(s, name=name, scan=scan))
    return out


def expand_slices(inputs: Iterable[str | Path], skipped: SkipLog) -> list[SliceInput]:
    """Every slice of ``inputs`` (files, folders, volumes, series) in input order; see the module docstring."""
    slices: list[SliceInput] = []
    for item in inputs:
        slices += _expand_one(item, skipped)
    return _unique(slices)


def scan_groups(slices: Iterable[SliceInput]) -> dict[str, list[SliceInput]]:
    """Slices of each scan (volume or series) in slice order, keyed by scan name; lone slices left out."""
    groups: dict[str, list[SliceInput]] = {}
    for s in slices:
        if s.scan is not None:
            groups.setdefault(s.scan, []).append(s)
    return {k: sorted(v, key=lambda s: s.slice_index or 0) for k, v in groups.items()}
