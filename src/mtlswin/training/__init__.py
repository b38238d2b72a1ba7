"""Training and evaluation: losses, schedule, LightningModule, resume, evaluate, report, predict.

Entry points: :func:`mtlswin.training.train.train`, :func:`mtlswin.training.evaluate.evaluate_run`,
:func:`mtlswin.training.report.write_report`, :func:`mtlswin.training.predict.predict_files`,
:func:`mtlswin.training.run.load_run`.
"""
