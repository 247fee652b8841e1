"""The shape of the book/ package: a one-way module graph, no import side effects."""

import ast
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "book"


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def book_imports(path, modules):
    """The book modules a file imports anywhere in it (an import inside a function counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found |= submodules or ({node.module} & modules)
    return found


def import_graph():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): book_imports(p, modules) - {module_name(p)} for p in paths}


def find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_book_modules_import_one_way():
    graph = import_graph()
    assert "book.timing" in graph and "book.data" in graph["book.timing"]
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in book/: {' -> '.join(cycle)}"


def test_book_package_has_no_import_side_effects():
    """Importing book changes no plotting, numba or threading state (STYLE.md)."""
    code = ("import plotly.io as pio, numba, os; before = (pio.templates.default, pio.renderers.default, "
            "numba.config.NUMBA_NUM_THREADS, dict(os.environ)); import book, book.plots, book.data, book.site; "
            "after = (pio.templates.default, pio.renderers.default, numba.config.NUMBA_NUM_THREADS, dict(os.environ)); "
            "assert before == after, (before, after)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
