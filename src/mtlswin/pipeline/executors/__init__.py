"""Executors: what trains the runs of a schedule (:mod:`mtlswin.pipeline.schedule`) behind one interface
(:class:`~mtlswin.pipeline.executors.base.Executor`): ``local`` (this machine's processes)."""

from mtlswin.pipeline.executors.base import Executor, RunResult
from mtlswin.pipeline.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "RunResult"]
