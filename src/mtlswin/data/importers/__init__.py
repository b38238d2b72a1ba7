"""Importers: write a manifest (and image files where needed) for data a user already has.

``IMPORTERS`` maps the CLI name to the function ``fn(src, out) -> ImportResult``:

- ``authors-npz``: the authors' ``train/valid/test.npz`` (:mod:`.authors_npz`);
- ``ct-ich``: PhysioNet CT-ICH v1.3.1 (:mod:`.ct_ich`);
- ``rsna``: RSNA Intracranial Hemorrhage Detection, ``stage_2_train.csv`` (:mod:`.rsna`);
- ``bhsd``: the Brain Hemorrhage Segmentation Dataset (:mod:`.bhsd`).
"""

from __future__ import annotations

from mtlswin.data.importers.authors_npz import import_authors_npz
from mtlswin.data.importers.bhsd import import_bhsd
from mtlswin.data.importers.common import ImportResult
from mtlswin.data.importers.ct_ich import import_ct_ich
from mtlswin.data.importers.rsna import import_rsna

IMPORTERS = {
    "authors-npz": import_authors_npz,
    "ct-ich": import_ct_ich,
    "rsna": import_rsna,
    "bhsd": import_bhsd,
}

__all__ = ["IMPORTERS", "ImportResult", "import_authors_npz", "import_bhsd", "import_ct_ich", "import_rsna"]
