"""mtlswin.data: files on disk -> batches.

Layers: decode (``dicom``, ``readers``: HU, window) -> ``manifest`` (validate) -> ``splits`` ->
``transforms`` (one draw for image and mask) -> ``cache`` (memory-mapped) -> ``dataset`` /
``datamodule`` / ``sampler``; ``importers`` write manifests for public data sets (the tiny data set of
the tests lives in ``tests/data_fixtures.py``, outside the package).

Public decoding API (re-exported here): ``load_slice(path, window=(40, 80))`` -> float32 (H, W) in
[0, 1]; ``read_hu(path)`` -> float32 HU; ``apply_window(hu, center, width)``; ``load_mask(path)`` -> int64.
"""

from mtlswin.data.dicom import DEFAULT_WINDOW, apply_window
from mtlswin.data.readers import image_shape, load_mask, load_slice, read_hu

__all__ = ["DEFAULT_WINDOW", "apply_window", "image_shape", "load_mask", "load_slice", "read_hu"]
