"""The authors' data format: ``train.npz``, ``valid.npz``, ``test.npz`` in one folder.

Each file holds ``image`` (N, H, W) uint8 windowed slices, ``label`` (N,) 0/1 (hypodensity),
``mask`` (N, H, W) 0/255 (or 0/1) hematoma masks, ``mask_exist`` (N,) 0/1. We write every slice as
an 8-bit PNG (``images/<split>_<i>.png``) and masks where ``mask_exist`` (``masks/...``), a
manifest with the single marker column ``hypodensity`` (the files hold no other marker, no
patient or hospital: ``patient_id`` is ``<split>_<i>``, i.e. unknown, and ``hospital`` is 1), a
``source`` column naming the file, and ``splits.csv`` that keeps the authors' split
(train -> train, valid -> val, test -> test_a).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mtlswin.data.importers.common import ImportResult, write_manifest
from mtlswin.io import atomic_path

_SPLITS = {"train": "train", "valid": "val", "test": "test_a"}
_KEYS = ("image", "label", "mask", "mask_exist")


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in _KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{path}: missing key(s) {missing}; the authors' files hold {list(_KEYS)}")
        arrays = {k: np.asarray(data[k]) for k in _KEYS}
    for key in ("image", "mask"):
        if arrays[key].ndim == 4 and arrays[key].shape[-1] == 1:
            arrays[key] = arrays[key][..., 0]
        if arrays[key].ndim != 3:
            raise ValueError(f"{path}: {key!r} must be (N, H, W), got shape {arrays[key].shape}")
    n = len(arrays["image"])
    if any(len(arrays[k]) != n for k in _KEYS):
        raise ValueError(f"{path}: keys have different lengths {[len(arrays[k]) for k in _KEYS]}")
    return arrays


def _to_uint8(arr: np.ndarray, what: str, path: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"{path}: {what} values must lie in [0, 255] (8-bit windowed), got [{arr.min()}, {arr.max()}]")
    return np.rint(arr).astype(np.uint8)


def import_authors_npz(src: str | Path, out: str | Path) -> ImportResult:
    """Convert ``src/{train,valid,test}.npz`` (any present) into ``out/``; see the module docstring."""
    src, out = Path(src), Path(out)
    files = [(name, src / f"{name}.npz") for name in _SPLITS if (src / f"{name}.npz").is_file()]
    if not files:
        raise ValueError(f"{src}: none of train.npz, valid.npz, test.npz found")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    records, split_rows = [], []
    for name, path in files:
        data = _load(path)
        images, masks = _to_uint8(data["image"], "image", path), data["mask"]
        masks = (masks > 0).astype(np.uint8) * 255
        for i in range(len(images)):
            image_rel = f"images/{name}_{i:05d}.png"
            Image.fromarray(images[i]).save(out / image_rel)
            mask_rel = ""
            if int(data["mask_exist"][i]):
                mask_rel = f"masks/{name}_{i:05d}.png"
                Image.fromarray(masks[i]).save(out / mask_rel)
            split_rows.append({"index": len(records), "split": _SPLITS[name]})
            records.append({
                "image": image_rel, "mask": mask_rel, "patient_id": f"{name}_{i:05d}", "hospital": 1,
                "hypodensity": int(data["label"][i]), "source": path.name,
            })  # fmt: skip
    manifest = write_manifest(records, out, ["hypodensity"], ["source"])
    splits = out / "splits.csv"

    with atomic_path(splits) as tmp:
        pd.DataFrame(split_rows).to_csv(tmp, index=False)
    return ImportResult(manifest, len(records), splits)
