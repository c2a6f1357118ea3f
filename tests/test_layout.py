"""The package's layout reads like its data flow (docs/ARCHITECTURE.md): a module imports only from the layers
below its own, and the top level holds at most 8 modules besides its packages."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lowlight_cli"
# Top to bottom; `training` and `evaluation` sit beside the flow, above what they use and under the CLI.
LAYERS = [
    ["__main__"],
    ["cli"],
    ["training", "evaluation"],
    ["__init__"],  # `__version__`, and `enhance`/`Enhancer` loaded from `api` on first use
    ["api"],
    ["run"],
    ["pipeline"],
    ["diffusion"],
    ["models"],
    ["priors"],
    ["checkpoints", "runtime"],
    ["storage"],
    ["io"],
    ["imaging"],
    ["settings"],
    ["errors"],
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str:
    """`lowlight_cli.io.images` → `io`; `lowlight_cli` (its `__init__`) → `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every package import, at any depth, except those only for type checking."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lowlight_cli"):
            names = [f"lowlight_cli.{alias.name}" for alias in node.names if (PACKAGE / f"{alias.name}.py").exists()]
            found.extend((node.lineno, name) for name in names or [node.module])  # `from lowlight_cli import api`
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("lowlight_cli"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_every_import_points_down_the_flow():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "bundled_weights":
            continue
        source = rel.parts[0].removesuffix(".py")
        for line, module in _imports(ast.parse(path.read_text(), str(path))):
            target = _part(module)
            if target != source and RANK[target] <= RANK[source]:
                upward.append(f"{rel}:{line} imports {module}")
    assert not upward, "\n".join(upward)


def test_every_part_of_the_package_has_a_layer():
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert parts - {"bundled_weights"} == set(RANK)


def test_the_top_level_holds_at_most_eight_modules():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 8, modules
