"""DICOM slices -> Hounsfield units, and the HU window that maps them to [0, 1].

Layer 1 of the data stack (decode). pydicom does the decoding: ``Dataset.pixel_array`` handles
uncompressed and compressed transfer syntaxes (JPEG, JPEG-LS, JPEG 2000 through the installed
pylibjpeg plugins; pydicom also corrects JPEG 2000 files whose codestream signedness disagrees
with the header, e.g. pydicom's ``J2K_pixelrep_mismatch.dcm``), and
``pydicom.pixels.apply_modality_lut`` applies ``HU = RescaleSlope * stored + RescaleIntercept``
(or a modality LUT), for signed and unsigned pixel representation alike.

A rescale value that is empty, not a number, NaN or Inf is refused by name; HU that come out NaN or Inf
anyway (float pixel data, an overflow) are refused by the readers' one finiteness check
(:func:`mtlswin.data.readers.check_finite`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_WINDOW: tuple[float, float] = (40.0, 80.0)  # brain window (center, width) in HU


def apply_window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map HU to [0, 1] with a linear window.

    ``out = clip((hu - (center - width / 2)) / width, 0, 1)``: ``center - width/2`` -> 0,
    ``center + width/2`` -> 1. Any shape; returns float32 of the same shape.
    """
    if not np.isfinite(width) or width <= 0:
        raise ValueError(f"window width must be a positive number of HU, got {width!r} (brain window: 40, 80)")
    if not np.isfinite(center):
        raise ValueError(f"window center must be a finite number of HU, got {center!r}")
    lo = float(center) - float(width) / 2.0
    out = (np.asarray(hu, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / float(width))
    return np.clip(out, 0.0, 1.0, out=out)


def _read_dataset(path: str | Path, stop_before_pixels: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: unreadable DICOM file ({type(err).__name__}: {err})") from err


def dicom_shape(path: str | Path) -> tuple[int, int]:
    """(rows, columns) from the DICOM header only (no pixel decoding)."""
    ds = _read_dataset(path, stop_before_pixels=True)
    if "Rows" not in ds or "Columns" not in ds:
        raise ValueError(f"{path}: DICOM file has no Rows/Columns, so it holds no image")
    return int(ds.Rows), int(ds.Columns)


def read_dicom_hu(path: str | Path) -> np.ndarray:
    """Decode one DICOM slice to Hounsfield units, float32 ``(H, W)``.

    Multi-frame files are refused (one sample is one slice). Errors name the file.
    """
    from pydicom.pixels import apply_modality_lut

    ds = _read_dataset(path)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ValueError(f"{path}: DICOM file has no pixel data")
    try:
        stored = ds.pixel_array
    except Exception as err:  # pydicom raises many types for bad/undecodable pixel data
        raise ValueError(
            f"{path}: cannot decode pixel data (transfer syntax {ds.file_meta.get('TransferSyntaxUID', '?')}): {err}"
        ) from err
    if stored.ndim != 2:
        raise ValueError(
            f"{path}: expected one 2-D slice, got pixel array of shape {stored.shape} "
            "(multi-frame or colour DICOM); split it into single slices first"
        )
    rescale = _rescale(ds, path)
    if rescale is None:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    # The common case, HU = slope * stored + intercept, in float32 directly (apply_modality_lut
    # goes through float64: the same values, 3x slower on a 512x512 slice).
    slope, intercept = rescale
    hu = stored.astype(np.float32)
    with np.errstate(over="ignore"):  # an overflow gives Inf, which the readers' finiteness check refuses by name
        if slope != 1.0:
            hu *= np.float32(slope)
        if intercept != 0.0:
            hu += np.float32(intercept)
    return hu


def _header_number(ds, tag: str, default: float, path: str | Path) -> float:
    """The header value ``tag`` as a finite float (``default`` when absent); ValueError naming it otherwise."""
    if tag not in ds:
        return default
    try:
        value = ds[tag].value  # pydicom converts the text on first access
        number = float(value)
    except (TypeError, ValueError) as err:
        value = ds.get_item(tag).value
        shown = "is empty" if value in (None, b"", "") else f"{value!r} is not a number"
        raise ValueError(f"{path}: {tag} {shown}; HU = RescaleSlope * stored + RescaleIntercept") from err
    if not np.isfinite(number):
        raise ValueError(f"{path}: {tag} is {number}, not a finite number: every HU of the slice would be NaN or Inf")
    return number


def _rescale(ds, path: str | Path) -> tuple[float, float] | None:
    """(RescaleSlope, RescaleIntercept) of ``ds``, each a finite number (intercept 0 when absent); None when
    pydicom's modality LUT applies instead (a ModalityLUTSequence, or no RescaleSlope: the stored values)."""
    if "ModalityLUTSequence" in ds or "RescaleSlope" not in ds:
        return None
    return _header_number(ds, "RescaleSlope", 1.0, path), _header_number(ds, "RescaleIntercept", 0.0, path)


def dicom_may_hold_nonfinite(path: str | Path) -> bool:
    """Whether the file's HU can be NaN or Inf, from its header: float pixel data (32 or 64 bits allocated), or a
    rescale that takes the stored range past float32. An invalid rescale value raises ValueError naming it."""
    ds = _read_dataset(path, stop_before_pixels=True)
    slope, intercept = _rescale(ds, path) or (1.0, 0.0)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if bits >= 32:
        return True
    reach = abs(slope) * 2.0 ** int(ds.get("BitsStored", bits) or bits) + abs(intercept)
    return not reach < float(np.finfo(np.float32).max)


def _first_value(value) -> float:
    """WindowCenter/WindowWidth may be multi-valued (one per preset): take the first."""
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue | list | tuple):
        value = value[0]
    return float(value)


def dicom_window(path: str | Path) -> tuple[float, float]:
    """The file's own (WindowCenter, WindowWidth) in HU; the first preset when multi-valued."""
    ds = _read_dataset(path, stop_before_pixels=True)
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        raise ValueError(
            f"{path}: window='file' but the file has no WindowCenter/WindowWidth; give a window such as (40, 80)"
        )
    return _first_value(ds.WindowCenter), _first_value(ds.WindowWidth)
