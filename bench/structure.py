"""The shape of the code, counted from its syntax trees: modules, import arrows between them, the
largest classes and the longest functions (UI builders in app/ listed apart), against the limits
issue 23 set (no class over 200 lines, no non-UI function over 60).

    python bench/structure.py [--top 8]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("raft", "app")
CLASS_LIMIT, FUNCTION_LIMIT = 200, 60


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def arrows(found: dict[str, Path]) -> set[tuple[str, str]]:
    """(importer, imported) pairs between the packages' modules, imports inside functions included."""
    pairs = set()
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in found]
                targets = submodules or [node.module]  # `from app import x, y`: each module named
            else:
                continue
            pairs.update((name, t) for t in targets if t in found and t != name)
    return pairs


def is_ui(path: Path, node: ast.AST) -> bool:
    """A Gradio builder: a function in app/ that opens Gradio layout blocks (`with gr.Tab(...)` and the like)."""
    if path.relative_to(ROOT).parts[0] != "app":
        return False
    for inner in ast.walk(node):
        if isinstance(inner, ast.With):
            for item in inner.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                    if isinstance(call.func.value, ast.Name) and call.func.value.id == "gr":
                        return True
    return False


def sizes(found: dict[str, Path]) -> tuple[list[tuple[int, str]], list[tuple[int, str, bool]]]:
    """(lines, name) of every class and (lines, name, is_ui) of every function or method."""
    classes, functions = [], []
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text())):
            length = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef):
                classes.append((length, f"{name}.{node.name}"))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((length, f"{name}.{node.name}", is_ui(path, node)))
    return sorted(classes, reverse=True), sorted(functions, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    found = modules()
    classes, functions = sizes(found)
    library = [f for f in functions if not f[2]]
    lines = sum(len(p.read_text().splitlines()) for p in found.values())
    print(f"modules: {len(found)} ({lines:,} lines); import arrows between them: {len(arrows(found))}")
    print(f"classes over {CLASS_LIMIT} lines: {sum(n > CLASS_LIMIT for n, _ in classes)}; largest:")
    for n, name in classes[: args.top]:
        print(f"  {n:5d}  {name}")
    print(f"non-UI functions over {FUNCTION_LIMIT} lines: {sum(n > FUNCTION_LIMIT for n, _, _ in library)}; longest:")
    for n, name, _ in library[: args.top]:
        print(f"  {n:5d}  {name}")
    ui = [f for f in functions if f[2]]
    print(f"UI builders (Gradio layout): {len(ui)}, the longest {ui[0][0] if ui else 0} lines")


if __name__ == "__main__":
    main()
