"""Read one slice (image or mask) from any supported file, by file type.

Supported inputs (chosen by the file name's ending):

- DICOM (``.dcm``, ``.dicom``, ``.ima`` or no ending): decoded to HU (:mod:`mtlswin.data.dicom`).
- PNG / JPEG / BMP / TIFF (8-bit): an already windowed slice; ``load_slice`` returns ``value / 255``.
- NumPy ``.npy``: an **integer** array holds HU (e.g. int16) and is windowed like DICOM; a
  **float** array holds an already windowed slice in [0, 1] and is returned as is.
- NIfTI (``.nii``, ``.nii.gz``): a volume; one sample per slice. A manifest path names the slice
  with a ``#k`` suffix, 0-based along the volume's last (axial) axis: ``ct/049.nii#12``. The slice
  is ``data[:, :, k].T`` (rows = second voxel axis, columns = first), scaled by the header's
  ``scl_slope``/``scl_inter`` (nibabel), so a CT volume in HU reads as HU.
- A 3-D ``.npy`` may also be indexed with ``#k`` (along its FIRST axis, ``(Z, H, W)``).

Images and masks of one sample go through the same reader, so they stay registered.
Every error names the file and the problem.

Every reader refuses values that are not numbers (NaN, +Inf, -Inf) through the one check
:func:`check_finite`, which raises :class:`NonFiniteError` naming the file, the slice and how many voxels
of each kind: NaN passes every range check written as a comparison, and a windowed NaN would become a
prediction nobody computed. :func:`check_values` runs the same check for the manifest, decoding pixels only
where the format can hold such values.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtlswin.data.dicom import (
    DEFAULT_WINDOW,
    apply_window,
    dicom_may_hold_nonfinite,
    dicom_shape,
    dicom_window,
    read_dicom_hu,
)

Window = tuple[float, float] | str

_RASTER = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_DICOM = (".dcm", ".dicom", ".ima", "")


class NonFiniteError(ValueError):
    """A slice holds values that are not finite numbers (NaN, +Inf, -Inf); the message names where and how many."""


def check_finite(array: np.ndarray, source: str | Path, slice: int | str | None = None) -> np.ndarray:
    """``array`` unchanged when every value is a finite number; else :class:`NonFiniteError`.

    The message names ``source`` (the file), ``slice`` (an index or a label such as ``"manifest row 3"``)
    and the count of NaN, +Inf and -Inf voxels. Integer and boolean arrays hold only finite values.
    """
    values = np.asarray(array)
    if values.dtype.kind not in "fc" or np.isfinite(values).all():
        return array
    if values.dtype.kind == "c":  # |NaN + 0j| is NaN and |Inf| is +Inf: the real counts below hold
        values = np.abs(values)
    counts = {"NaN": np.isnan(values).sum(), "+Inf": np.isposinf(values).sum(), "-Inf": np.isneginf(values).sum()}
    kinds = ", ".join(f"{int(n)} {name}" for name, n in counts.items() if n)
    bad = sum(int(n) for n in counts.values())
    where = f"{source}" if slice is None else f"{source}, slice {slice}"
    raise NonFiniteError(
        f"{where}: {bad} of {values.size} voxels are not finite numbers ({kinds}); "
        "a slice with NaN or Inf values is not read (fix or drop the file)"
    )


def split_slice(path: str | Path) -> tuple[Path, int | None]:
    """``"vol.nii.gz#12"`` -> ``(Path("vol.nii.gz"), 12)``; a plain path -> ``(path, None)``."""
    text = str(path)
    base, sep, tail = text.rpartition("#")
    if sep and tail.isdigit():
        return Path(base), int(tail)
    return Path(text), None


def file_kind(path: str | Path) -> str:
    """One of ``dicom``, ``raster``, ``npy``, ``nifti`` from the file name; ValueError otherwise."""
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    suffix = Path(name).suffix
    if suffix == ".npy":
        return "npy"
    if suffix in _RASTER:
        return "raster"
    if suffix in _DICOM or suffix[1:].isdigit():  # DICOM files are often named 1.2.840...NNN
        return "dicom"
    raise ValueError(
        f"{path}: unsupported file type {suffix!r}; use DICOM, PNG/JPEG, .npy or NIfTI (.nii/.nii.gz#slice)"
    )


def _nifti_volume(path: str, mtime_ns: int) -> np.ndarray:
    """Whole volume, scaled; ValueError naming the file when it cannot be read."""
    data = _nifti_read(path, mtime_ns)
    if isinstance(data, str):
        raise ValueError(data)
    return data


@functools.lru_cache(maxsize=2)
def _nifti_read(path: str, mtime_ns: int) -> np.ndarray | str:
    """Whole volume, scaled, or why it cannot be read (cached either way: consecutive slices of one volume are
    read together, and every slice of an unreadable volume fails at once instead of decoding it again)."""
    import nibabel as nib

    try:
        shape = nifti_shape(path)  # a header that announces more voxels than the file holds is refused before reading
    except ValueError as err:
        return str(err)
    if 0 in shape:  # nibabel reads an empty volume as 1-D
        return np.zeros(shape, np.float32)
    try:
        img = nib.load(path)
        with np.errstate(over="ignore"):  # a scale that overflows gives Inf, refused per slice by check_finite
            data = np.asarray(img.dataobj)
    except Exception as err:  # nibabel raises several types for bad headers / truncated data
        return f"{path}: unreadable NIfTI file ({type(err).__name__}: {err})"
    if data.ndim != 3:
        return f"{path}: expected a 3-D NIfTI volume, got shape {data.shape}"
    return data


def _nifti_slice(path: Path, k: int | None) -> np.ndarray:
    if k is None:
        raise ValueError(f"{path}: a NIfTI volume needs a slice index, e.g. '{path}#0' (0-based, last axis)")
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as err:
        raise ValueError(f"{path}: cannot read file ({err})") from err
    vol = _nifti_volume(str(path), mtime)
    if not 0 <= k < vol.shape[2]:
        raise ValueError(f"{path}#{k}: slice index out of range, the volume has {vol.shape[2]} slices (0-based)")
    return check_finite(np.ascontiguousarray(vol[:, :, k].T), path, k)


def _npy(path: Path, k: int | None, copy: bool = True) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:
        raise ValueError(f"{path}: unreadable .npy file ({type(err).__name__}: {err})") from err
    if k is not None:
        if arr.ndim != 3 or not 0 <= k < arr.shape[0]:
            raise ValueError(f"{path}#{k}: slice index needs a 3-D (Z, H, W) array with k < Z, got {arr.shape}")
        arr = arr[k]
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D slice (H, W), got shape {arr.shape}; index a volume with '#k'")
    return check_finite(np.array(arr), path, k) if copy else arr


def _raster(path: Path, mask: bool = False) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I", "F"):
                raise ValueError(f"{path}: {im.mode} image is not 8-bit; store HU as int16 .npy/DICOM instead")
            if not mask and im.mode != "L":
                im = im.convert("L")
            return check_finite(np.array(im), path)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: unreadable image file ({type(err).__name__}: {err})") from err


def read_hu(path: str | Path) -> np.ndarray:
    """Hounsfield units of one slice, float32 ``(H, W)`` (DICOM, NIfTI ``#k``, integer ``.npy``)."""
    file, k = split_slice(path)
    kind = file_kind(file)
    if kind == "dicom":
        return check_finite(read_dicom_hu(file), file)  # a rescale slope or intercept can make NaN or Inf
    if kind == "nifti":
        with np.errstate(over="ignore"):  # float32 can overflow to Inf, which check_finite refuses
            return check_finite(_nifti_slice(file, k).astype(np.float32), file, k)
    if kind == "npy":
        arr = _npy(file, k)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{path}: float .npy holds an already windowed slice, not HU; use load_slice")
        return arr.astype(np.float32)
    raise ValueError(f"{path}: an 8-bit {file.suffix} image is already windowed and holds no HU; use load_slice")


def resolve_window(path: str | Path, window: Window) -> tuple[float, float]:
    """``window`` as (center, width): a pair is returned as is; ``"file"`` reads the DICOM's own."""
    if isinstance(window, str):
        if window != "file":
            raise ValueError(f"window must be (center, width) or 'file', got {window!r}")
        file, _ = split_slice(path)
        if file_kind(file) != "dicom":
            raise ValueError(f"{path}: window='file' needs DICOM WindowCenter/WindowWidth; give (center, width)")
        return dicom_window(file)
    center, width = window
    return float(center), float(width)


def load_slice(path: str | Path, window: Window = DEFAULT_WINDOW) -> np.ndarray:
    """One slice windowed to float32 ``(H, W)`` in [0, 1].

    HU sources (DICOM, NIfTI, integer .npy) are windowed with ``window`` = (center, width) in HU
    or ``"file"`` (the DICOM's WindowCenter/WindowWidth, first value if several). 8-bit images
    return ``value / 255``; float .npy is returned as is (must lie in [0, 1]).
    """
    file, k = split_slice(path)
    kind = file_kind(file)
    if kind == "raster":
        return _raster(file).astype(np.float32) / np.float32(255.0)
    if kind == "npy":
        arr = _npy(file, k)
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
            if arr.size and (float(arr.min()) < -1e-3 or float(arr.max()) > 1 + 1e-3):
                raise ValueError(
                    f"{path}: float .npy must be a windowed slice in [0, 1], found [{arr.min():g}, {arr.max():g}]; "
                    "store HU as an integer array (int16)"
                )
            return np.clip(arr, 0.0, 1.0)
    center, width = resolve_window(path, window)
    return apply_window(read_hu(path), center, width)


def load_mask(path: str | Path) -> np.ndarray:
    """Mask of one slice as int64 ``(H, W)`` class labels (0 = background).

    8-bit images whose values are only {0, 255} are taken as binary and mapped to {0, 1};
    other values are kept (e.g. BHSD labels 0-5). NIfTI values are rounded to integers.
    """
    file, k = split_slice(path)
    kind = file_kind(file)
    if kind == "raster":
        arr = _raster(file, mask=True)
        if arr.ndim == 3:
            arr = arr[..., 0]
        if arr.max(initial=0) == 255 and np.isin(arr, (0, 255)).all():
            arr = arr // 255
    elif kind == "npy":
        arr = _npy(file, k)
    elif kind == "nifti":
        arr = np.rint(_nifti_slice(file, k))
    else:
        arr = read_hu(file)
    if arr.ndim != 2:
        raise ValueError(f"{path}: a mask must be 2-D (H, W), got shape {arr.shape}")
    return arr.astype(np.int64)


def check_values(path: str | Path) -> None:
    """Raise :class:`NonFiniteError` (or ``ValueError``) when the slice ``path`` holds values that are not finite.

    Pixels are decoded only where the format can hold such values: a float ``.npy``, a NIfTI slice, a DICOM file
    whose header allows them (float pixel data, or a rescale that can overflow; an invalid rescale value is
    refused from the header). 8-bit images and integer ``.npy`` hold only finite values.
    """
    file, k = split_slice(path)
    kind = file_kind(file)
    if kind == "npy":
        arr = _npy(file, k, copy=False)
        if arr.dtype.kind in "fc":
            check_finite(np.asarray(arr), file, k)
    elif kind == "nifti":
        _nifti_slice(file, k)
    elif kind == "dicom" and dicom_may_hold_nonfinite(file):
        read_hu(file)


def image_shape(path: str | Path) -> tuple[int, int]:
    """(H, W) of a slice, from headers where the format allows (no pixel decoding)."""
    file, k = split_slice(path)
    kind = file_kind(file)
    if kind == "dicom":
        return dicom_shape(file)
    if kind == "raster":
        try:
            with Image.open(file) as im:
                return im.height, im.width
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{file}: unreadable image file ({type(err).__name__}: {err})") from err
    if kind == "npy":
        shape = _npy(file, k, copy=False).shape
        return int(shape[0]), int(shape[1])
    return _nifti_header_shape(file, k)


def _nifti_header_shape(file: Path, k: int | None) -> tuple[int, int]:
    shape = nifti_shape(file)
    if k is None or not 0 <= k < shape[2]:
        raise ValueError(f"{file}#{k}: slice index missing or out of range, the volume has {shape[2]} slices")
    return int(shape[1]), int(shape[0])


def nifti_shape(file: str | Path) -> tuple[int, int, int]:
    """The shape of a 3-D NIfTI volume from its header, checked against the file's size without decoding it.

    An uncompressed ``.nii`` must hold every voxel its header announces; a ``.nii.gz`` must too, by the
    uncompressed size its gzip trailer records, and an announced size over 4 GiB (beyond what that trailer
    can tell) is refused as absurd rather than allocated. ValueError naming the file otherwise.
    """
    import nibabel as nib

    file = Path(file)
    try:
        img = nib.load(str(file))
        shape, offset = img.shape, int(img.dataobj.offset)
        need = offset + math.prod(shape) * img.get_data_dtype().itemsize
    except Exception as err:
        raise ValueError(f"{file}: unreadable NIfTI file ({type(err).__name__}: {err})") from err
    if len(shape) != 3:
        raise ValueError(f"{file}: expected a 3-D NIfTI volume, got shape {shape}")
    if file.name.lower().endswith(".gz"):
        with open(file, "rb") as handle:
            handle.seek(max(0, file.stat().st_size - 4))
            size = int.from_bytes(handle.read(4), "little")  # uncompressed size mod 2**32 (RFC 1952)
        if need >= 2**32:
            raise ValueError(f"{file}: the NIfTI header's shape {shape} announces {need} bytes of voxels, over 4 GiB")
    else:
        size = file.stat().st_size
    if size < need:
        raise ValueError(f"{file}: truncated NIfTI file, the header's shape {shape} needs {need} bytes, it has {size}")
    return int(shape[0]), int(shape[1]), int(shape[2])
