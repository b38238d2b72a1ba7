"""Shared fixture of the benchmark tests: a script of ``benchmarks/`` imported as a module."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def benchmark_module():
    """``benchmark_module("demo_rows")`` -> ``benchmarks/demo_rows.py`` as a module (the folder is no package)."""

    def load(name: str):
        sys.path.insert(0, str(BENCHMARKS))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(BENCHMARKS))

    return load
