"""Post-hoc steps on a trained run folder: Deep Feature Reweighting (:mod:`.dfr`) and the cue probe
(:mod:`.cue_probe`).

They are methods of :mod:`mtlswin.methods`' registry (kind ``post_hoc``, each with its settings dataclass),
but they read and write run folders, so they sit above :mod:`mtlswin.runs` and :mod:`mtlswin.config`, while
the training-time methods sit below the config that names them. Each registers when its module is imported.
"""
