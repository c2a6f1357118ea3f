"""List the package's functions longer than a limit (default 60 lines, decorators not counted).

    python scripts/check_function_length.py [LIMIT]

Exits 1 if any is over the limit. Tests are not checked.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lowlight_cli"


def long_functions(limit: int) -> list[tuple[int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((length, f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    over = long_functions(limit)
    for length, where in over:
        print(f"{length:4d} lines  {where}")
    print(f"{len(over)} function(s) over {limit} lines")
    sys.exit(1 if over else 0)
