"""Image inputs of ``predict`` and ``gradcam``: files and folders -> named inputs, unreadable ones skipped.

:func:`find_images` expands folders (recursively; hidden files and folders are left out) into every
file of an image kind :func:`mtlswin.data.readers.file_kind` knows (DICOM, PNG/JPEG/BMP/TIFF, ``.npy``,
NIfTI); files of other kinds in a folder (``.csv``, ``.json``, ...) are not inputs. Each input gets an
output name that is unique and traceable: its path relative to the folder it was found in (or its file
name, when given directly), image suffix dropped, separators replaced by ``__``
(``h01/P0001/1.2.840.10008.1.dcm`` -> ``h01__P0001__1.2.840.10008.1``); a name taken twice gets ``-2``, ...

:class:`SkipLog` collects the inputs that could not be read (one line each on stderr) and writes them
to ``skipped.csv`` (``file, reason``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mtlswin.data.readers import file_kind, split_slice
from mtlswin.io import atomic_path

__all__ = ["ImageInput", "SkipLog", "find_images", "output_name"]

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".npy", ".dcm", ".dicom", ".ima", ".png", ".jpg", ".jpeg", ".bmp", ".tif",
                   ".tiff")  # fmt: skip
_SEPARATOR = "__"


@dataclass(frozen=True)
class ImageInput:
    """One input slice: the file to read (``vol.nii.gz#k`` for a volume slice) and its output name."""

    path: Path | str
    name: str


def output_name(path: str | Path, base: Path | None = None) -> str:
    """Output name of ``path``: relative to the folder ``base`` (else the file name), suffix dropped, ``/`` -> ``__``."""
    file, k = split_slice(path)
    rel = Path(file).relative_to(base) if base is not None else Path(Path(file).name)
    text = rel.as_posix()
    lower = text.lower()
    for suffix in _IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    text = text.replace("/", _SEPARATOR).replace("\\", _SEPARATOR)
    return text if k is None else f"{text}_{k}"


def _is_image(path: Path) -> bool:
    try:
        file_kind(path)
    except ValueError:
        return False
    return True


def _visible(path: Path, base: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(base).parts)


@dataclass
class SkipLog:
    """Inputs that could not be used, with the reason; ``report`` prints one line each (stderr by default)."""

    rows: list[dict[str, str]] = field(default_factory=list)
    report: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))

    def skip(self, path: str | Path, reason: str) -> None:
        self.rows.append({"file": str(path), "reason": reason})
        self.report(f"skipped {path}: {reason}")

    def __len__(self) -> int:
        return len(self.rows)

    def write(self, out: Path) -> Path | None:
        """``out/skipped.csv`` (atomic) when something was skipped; a stale one from an earlier call is removed."""
        path = out / "skipped.csv"
        if not self.rows:
            path.unlink(missing_ok=True)
            return None
        with atomic_path(path) as tmp:
            pd.DataFrame(self.rows, columns=["file", "reason"]).to_csv(tmp, index=False)
        return path


def find_images(inputs: list[str | Path], skipped: SkipLog) -> list[ImageInput]:
    """Files as given and every image file under folders (sorted), with unique output names.

    A path that does not exist is recorded in ``skipped``; ``file.nii.gz#k`` names one volume slice.
    """
    found: list[ImageInput] = []
    taken: dict[str, int] = {}

    def add(path: Path | str, name: str) -> None:
        taken[name] = taken.get(name, 0) + 1
        found.append(ImageInput(path, name if taken[name] == 1 else f"{name}-{taken[name]}"))

    for item in inputs:
        file, k = split_slice(item)
        if file.is_dir():
            for f in sorted(p for p in file.rglob("*") if p.is_file() and _visible(p, file) and _is_image(p)):
                add(f, output_name(f, file))
        elif file.is_file():
            add(str(item) if k is not None else file, output_name(item))
        else:
            skipped.skip(item, "does not exist")
    return found
