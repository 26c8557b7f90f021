"""The seams between tunerail's modules: no import cycle, counting imports inside functions.

A function-local import hides a cycle from Python but not from a reader: the shared type still
depends on the step. The graph is read from the source (AST), so it sees every import, also the
ones under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tunerail"


def module_files(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _known(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The module ``name`` names, or its nearest enclosing module (``import a.b.c`` of a missing c is a.b)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, is_package: bool, modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """Every tunerail module ``name`` imports anywhere in its file (functions included)."""
    here = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(t for alias in node.names if (t := _known(alias.name, modules)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: level 1 is this package, 2 its parent...
                base_parts = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                target = f"{base}.{alias.name}"
                hit = target if target in modules else _known(base, modules)
                if hit:
                    found.add(hit)
    found.discard(name)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(package)
    return {name: imports_of(name, path, is_pkg, modules) for name, (path, is_pkg) in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycle_among_tunerail_modules():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_graph_reader_sees_local_relative_and_from_imports(tmp_path):
    """The walker itself: a cycle closed only by a function-local relative import is still found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")  # from a.b import c: edge to module a.b.c
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")  # relative, inside a function
    (pkg / "c.py").write_text("from pkg.sub.b import f\nimport pkg.a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.sub.b", "pkg.a"}
    assert find_cycle(graph) in (["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"], ["pkg.sub.b", "pkg.c", "pkg.sub.b"])
    (pkg / "c.py").write_text("X = 1\n")
    assert find_cycle(import_graph(pkg)) is None


def test_check_names_table_matches_the_registry():
    """``doctor.disabled_checks`` is validated against tunerail.names: it must list exactly the registered checks."""
    from tunerail.doctor.registry import all_checks
    from tunerail.names import DOCTOR_CHECKS

    assert {c.code: c.name for c in all_checks()} == DOCTOR_CHECKS


def test_registry_refuses_a_check_the_names_table_does_not_list():
    import pytest

    from tunerail.doctor.registry import register

    with pytest.raises(ValueError, match="DOC999 'made.up': tunerail/names.py DOCTOR_CHECKS has no DOC999"):
        register("DOC999", "made.up")
    with pytest.raises(ValueError, match="lists DOC010 as 'duplicates.exact'"):
        register("DOC010", "duplicates.exakt")


# Package __init__ files that hold more than re-exports, each with its reason.
_INIT_EXCEPTIONS = {
    "tunerail": "the lazy public API table: `import tunerail` must not import the steps (or torch)",
    "tunerail.cli": "the command line's main() and the registration of its command modules",
}


def _init_problems(name: str, path: Path) -> list[str]:
    """What in a package ``__init__`` is not a docstring, an import, ``__all__`` or ``make_callable(__name__, entry)``."""
    problems = []
    for i, node in enumerate(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "make_callable":
            continue
        problems.append(f"{name} line {node.lineno}: {type(node).__name__}")
    return problems


def test_package_inits_only_re_export():
    """One package convention: an ``__init__`` re-exports (the step function from its recipe.py), nothing else."""
    inits = {name: path for name, (path, is_pkg) in module_files().items() if is_pkg and name not in _INIT_EXCEPTIONS}
    problems = [p for name, path in sorted(inits.items()) for p in _init_problems(name, path)]
    assert not problems, "logic in a package __init__ (move it to the package's recipe.py or a module):\n" + "\n".join(problems)
    for step in ("doctor", "split", "select", "train", "sweep", "serve", "monitor"):
        text = inits[f"tunerail.{step}"].read_text(encoding="utf-8")
        assert f"from tunerail.{step}.recipe import" in text and f"make_callable(__name__, {step})" in text, step


# --- size: no module over 500 lines, no function over 80 lines or 8 parameters -----------------------

MAX_FILE_LINES, MAX_FUNCTION_LINES, MAX_PARAMS = 500, 80, 8
# A file states each exception in one line: ``# size: <qualified name or "file">: <reason>``.
_SIZE_MARK = re.compile(r"^\s*# size: ([\w.]+): (\S.*)$")

# Temporary: being split on branch seamst (the lead removes an entry as its merge lands).
_SIZE_ALLOWANCE: set[str] = set()


def _param_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = node.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)] + [x.arg for x in (a.vararg, a.kwarg) if x]
    return len([n for n in names if n not in ("self", "cls")])


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) for every function, methods and nested functions included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def size_problems(path: Path, name: str) -> list[str]:
    """What in one file breaks a size limit without a reason, and each reason that excuses nothing (stale)."""
    text = path.read_text(encoding="utf-8")
    marks = {m.group(1): m.group(2) for line in text.splitlines() if (m := _SIZE_MARK.match(line))}
    over: dict[str, str] = {}
    if (n := len(text.splitlines())) > MAX_FILE_LINES:
        over["file"] = f"{n} lines (max {MAX_FILE_LINES})"
    for qual, node in _functions(ast.parse(text)):
        lines, params = (node.end_lineno or node.lineno) - node.lineno + 1, _param_count(node)
        if lines > MAX_FUNCTION_LINES or params > MAX_PARAMS:
            over[qual] = f"{lines} lines, {params} parameters (max {MAX_FUNCTION_LINES}, {MAX_PARAMS})"
    problems = [f"{name}: {qual}: {what}" for qual, what in over.items() if qual not in marks]
    problems += [f"{name}: stale `# size: {qual}:` (within the limits now, or no such function)" for qual in marks if qual not in over]
    return problems


def test_no_file_or_function_over_the_size_limits():
    """Issue 24: a module over 500 lines or a function over 80 lines / 8 parameters needs a one-line reason in its file."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name not in _SIZE_ALLOWANCE:
            problems += size_problems(path, name)
    assert not problems, "split it, or add `# size: <name>: <reason>` to the file:\n" + "\n".join(problems)
    assert all((PACKAGE / name).is_file() for name in _SIZE_ALLOWANCE), "an allowance names a file that is gone: remove it"


def test_size_check_sees_long_functions_many_parameters_and_reasons(tmp_path):
    """The checker itself: methods and nested functions are counted, self is not, a reason excuses, a stale one fails."""
    body = "\n".join(f"        x{i} = {i}" for i in range(80))
    src = f"class A:\n    def m(self, a, b, c, d, e, f, g, h):\n        pass\n\n    def n(self, a, b, c, d, e, f, g, h, i):\n        pass\n\n\ndef outer():\n    def inner():\n{body}\n"
    path = tmp_path / "mod.py"
    path.write_text(src)
    assert size_problems(path, "mod.py") == [
        "mod.py: A.n: 2 lines, 9 parameters (max 80, 8)",
        "mod.py: outer: 82 lines, 0 parameters (max 80, 8)",
        "mod.py: outer.inner: 81 lines, 0 parameters (max 80, 8)",
    ]
    path.write_text(src + "# size: A.n: mirrors a CLI\n# size: outer: demo\n# size: outer.inner: demo\n# size: A.m: not over\n")
    assert size_problems(path, "mod.py") == ["mod.py: stale `# size: A.m:` (within the limits now, or no such function)"]
    path.write_text("x = 1\n" * 501)
    assert size_problems(path, "mod.py") == ["mod.py: file: 501 lines (max 500)"]
