"""Training: losses, schedule, the LightningModule, resume, train, and the Lightning machinery that
``pretrain`` shares (atomic checkpoint IO, the resumable loader, quiet logging, CSV-log merging).

Entry point: :func:`mtlswin.training.train.train`. Evaluation lives in :mod:`mtlswin.evaluation`, the
methods (guidance terms, objectives, post-hoc steps) in :mod:`mtlswin.methods`.
"""
