"""The package's layers are its folders, and a folder imports only from layers below it.

This is the picture of docs/architecture.md, enforced: every `import` in src/hybrid_rl (at
module level or inside a function) is checked against it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hybrid_rl

PACKAGE = Path(hybrid_rl.__file__).parent

# Layer of every top-level module or folder, lowest first. Two groups of one rank (data and
# algos) may not import each other; a group may import its own modules.
LAYERS: dict[str, tuple[int, str]] = {
    # Neutral helpers with one job each, importing no other layer.
    "batch": (0, "base"),
    "atomic_io": (0, "base"),
    "settings": (0, "base"),
    "seeding": (0, "base"),
    "provenance": (0, "base"),
    "data": (1, "data"),
    "algos": (1, "algos"),
    "runs": (2, "runs"),
    "eval": (3, "eval"),
    "envs": (3, "eval"),  # the environments the rollouts step
    "behavior": (4, "behavior"),
    "train": (5, "loops"),
    "finetune": (5, "loops"),
    "finetune_config": (5, "loops"),
    "phase2_options": (5, "loops"),
    "phase1_run": (5, "loops"),
    "online_collection": (5, "loops"),
    "report": (6, "report"),
    "launch": (7, "launch"),
    "cli": (8, "cli"),
}


def layer_of(module: str) -> tuple[int, str]:
    """The layer of `hybrid_rl.<part>...`."""
    part = module.split(".")[1]
    if part not in LAYERS:
        raise AssertionError(
            f"{module}: tests/test_layers.py and docs/architecture.md place every folder and "
            "top-level module in a layer; add this one to both"
        )
    return LAYERS[part]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every hybrid_rl import in the file, relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.startswith("hybrid_rl.")]
    return found


def source_modules() -> list[tuple[str, Path]]:
    return [
        ("hybrid_rl." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts), path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") or path.parent != PACKAGE
    ]


@pytest.mark.parametrize(("module", "path"), source_modules(), ids=lambda v: str(v))
def test_a_module_imports_only_its_own_layer_and_those_below(module, path):
    rank, group = layer_of(module)
    upward = [
        f"line {line}: {target} ({layer_of(target)[1]})"
        for line, target in imports_of(path)
        if layer_of(target)[1] != group and layer_of(target)[0] >= rank
    ]
    assert not upward, f"{module} ({group}) imports from its own rank or above: {upward}"


def test_every_folder_and_module_has_a_layer():
    parts = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    parts |= {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert parts == set(LAYERS)


def test_the_architecture_doc_shows_every_layer():
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    for part in LAYERS:
        folder_or_module = f"`{part}/`" if (PACKAGE / part).is_dir() else f"`{part}.py`"
        assert folder_or_module in doc, f"docs/architecture.md does not place {folder_or_module}"
