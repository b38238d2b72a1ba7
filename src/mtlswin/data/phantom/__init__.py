"""Synthetic head-CT phantom: the embedded default data set (``mtlswin synth``).

Modules: ``anatomy`` (3D head in HU), ``hematoma`` (blobs and the four markers), ``hospitals``
(scanner profiles, presets), ``cue`` (the spurious atrophy cue), ``scanner`` (blur, noise,
calibration), ``generate`` (orchestration, in memory), ``writer`` (DICOM, PNG masks, manifest),
``preview`` (gallery), ``shortcut`` (does a global-statistics classifier exploit the cue?).
"""

from mtlswin.data.phantom.generate import SynthConfig, iter_slices
from mtlswin.data.phantom.preview import write_gallery
from mtlswin.data.phantom.writer import write_dataset

__all__ = ["SynthConfig", "iter_slices", "write_dataset", "write_gallery"]
