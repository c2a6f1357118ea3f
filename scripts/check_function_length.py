"""List functions whose body is longer than a limit (default 60 lines), in the package and the benchmarks.

    python scripts/check_function_length.py [LIMIT]

A function's body is counted from its first statement after the docstring
to its end: a signature (a command's options, one per line as the
formatter lays them out) and a docstring are declaration, not logic.
Exits 1 if any is over the limit. Tests are not checked.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = (ROOT / "lowlight_cli", ROOT / "benchmarks", ROOT / "scripts")


def body_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the function's last line."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return (node.end_lineno or node.lineno) - body[0].lineno + 1


def long_functions(limit: int) -> list[tuple[int, str]]:
    found = []
    for folder in CHECKED:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = body_length(node)
                    if length > limit:
                        found.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    over = long_functions(limit)
    for length, where in over:
        print(f"{length:4d} lines  {where}")
    print(f"{len(over)} function(s) over {limit} lines")
    sys.exit(1 if over else 0)
