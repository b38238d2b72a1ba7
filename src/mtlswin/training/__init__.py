"""Training and evaluation: losses, schedule, LightningModule, resume, evaluate, report, predict.

Entry points: :func:`mtlswin.training.train.train`, :func:`mtlswin.training.evaluate.evaluate_run`,
:func:`mtlswin.training.report.write_report`, :func:`mtlswin.training.predict.predict_files`,
:class:`mtlswin.runs.Run` (opening a trained run).
"""
