"""Evaluation of trained runs: evaluate (metrics per split), metrics, counterfactual (cue twins), learned
(runs that did not learn), report (the results table and figures), predict (new images).

Entry points: :func:`mtlswin.evaluation.evaluate.evaluate_run`, :func:`mtlswin.evaluation.report.write_report`,
:func:`mtlswin.evaluation.predict.predict_files`; :class:`mtlswin.runs.Run` opens a trained run.
"""
