"""The import graph points one way: science <- engine <- services (contracts, publishing, readers, ...) <- the Dagster
layer (resources, IO managers, checks, assets, sensors) <- definitions <- entry points (CLI, runner). Every import
of the package, at module level or inside a function, is read from the source; one that points up fails."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "soil_pipeline"

# Rank of each layer; a module may import modules of its own rank or below, never above.
LAYERS = [
    ("science", ("soil_pipeline.science",)),
    ("engine", ("soil_pipeline.engine",)),
    (
        "services",
        (
            "soil_pipeline",  # the package itself: `soil_pipeline.read`
            "soil_pipeline.contracts",
            "soil_pipeline.publishing",
            "soil_pipeline.readers",
            "soil_pipeline.ingest",
            "soil_pipeline.drop_check",
            "soil_pipeline.drop_evidence",
            "soil_pipeline.provenance",
            "soil_pipeline.reference_data",
            "soil_pipeline.zones",
            "soil_pipeline.maps",
            "soil_pipeline.embedded",
            "soil_pipeline.run_config",
            "soil_pipeline.raster_inputs",
            "soil_pipeline.errors",
            "soil_pipeline.redaction",
        ),
    ),
    (
        "dagster",
        (
            "soil_pipeline.resources",
            "soil_pipeline.asset_conventions",
            "soil_pipeline.io_managers",
            "soil_pipeline.checks",
            "soil_pipeline.partitions",
            "soil_pipeline.refresh",
            "soil_pipeline.run_commit",
            "soil_pipeline.failures",
            "soil_pipeline.assets",
        ),
    ),
    ("definitions", ("soil_pipeline.definitions",)),
    ("entry points", ("soil_pipeline.cli", "soil_pipeline.runner")),
]
# Third-party packages a layer may not import at all.
FORBIDDEN = {
    "science": {"dagster", "threading", "concurrent", "ctypes", "great_expectations", "fsspec"},
    "engine": {"dagster", "great_expectations"},
    "services": {"dagster"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> tuple[int, str]:
    """(rank, name) of the layer holding `module`: the longest matching prefix."""
    best = None
    for rank, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank, name)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[1], best[2]


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (`from a.b import c` counts a.b.c when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                relative = Path(*candidate.split("."))
                if (PACKAGE.parent / relative).with_suffix(".py").exists() or (PACKAGE.parent / relative).is_dir():
                    found.add(candidate)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_layer_above_its_own(path):
    module = _module_name(path)
    rank, layer = _layer(module)
    upward, forbidden = [], []
    for name in sorted(_imports(path)):
        if name == "soil_pipeline" or name.startswith("soil_pipeline."):
            other_rank, other_layer = _layer(name)
            if other_rank > rank:
                upward.append(f"{name} ({other_layer})")
        elif name.split(".")[0] in FORBIDDEN.get(layer, ()):
            forbidden.append(name)
    assert not upward, f"{module} ({layer}) imports upward: {', '.join(upward)}"
    assert not forbidden, f"{module} ({layer}) imports {', '.join(forbidden)}"


def test_the_rules_catch_an_upward_import(tmp_path):
    """The check itself: a science module importing the engine, and one importing dagster, are both caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("import dagster\nfrom soil_pipeline.engine import raster\n")
    names = _imports(bad)
    assert "soil_pipeline.engine.raster" in names and "dagster" in names
    assert _layer("soil_pipeline.engine.raster")[0] > _layer("soil_pipeline.science.grid")[0]
    assert "dagster" in FORBIDDEN["science"]
