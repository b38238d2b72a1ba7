"""``mtlswin.models`` has no import cycle and imports nothing of the layers above it (checked with grimp)."""

from __future__ import annotations

import grimp
import pytest

ABOVE = ("data", "training", "methods", "evaluation", "pipeline", "cli", "explain", "pretrain", "config", "runs")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("mtlswin", cache_dir=None)


def _models(graph: grimp.ImportGraph) -> list[str]:
    return sorted(m for m in graph.modules if m == "mtlswin.models" or m.startswith("mtlswin.models."))


def test_no_module_of_models_imports_one_that_imports_it_back(graph):
    modules = _models(graph)
    assert {"mtlswin.models.registry", "mtlswin.models.factory", "mtlswin.models.conversion.swin"} <= set(modules)
    cycles = [
        graph.find_shortest_chain(importer=imported, imported=module)
        for module in modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.startswith("mtlswin.") and graph.find_shortest_chain(importer=imported, imported=module)
    ]
    assert cycles == []


def test_the_registry_imports_nothing_of_the_project(graph):
    assert [
        m for m in graph.find_modules_directly_imported_by("mtlswin.models.registry") if m.startswith("mtlswin")
    ] == []


@pytest.mark.parametrize("layer", ABOVE)
def test_models_imports_nothing_of_the_layers_above(graph, layer):
    package = f"mtlswin.{layer}"
    if package not in graph.modules:
        pytest.skip(f"{package} does not exist")
    chain = graph.find_shortest_chains(importer="mtlswin.models", imported=package, as_packages=True)
    assert chain == set()
