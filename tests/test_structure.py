"""The package's shape: no import cycle (imports inside functions included), no private name used across modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pkd"


def _modules() -> dict[str, ast.Module]:
    return {f"pkd.{p.stem}" if p.stem != "__init__" else "pkd": ast.parse(p.read_text(), str(p))
            for p in sorted(PACKAGE.glob("*.py"))}


def _imports(tree: ast.Module, modules: set[str]) -> list[tuple[str, str | None]]:
    """(module, name) for every `import pkd.x` / `from pkd.x import y` / `from pkd import x`, anywhere in the file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pkd"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.append((sub, None) if sub in modules else (node.module, a.name))
    return found


def test_the_import_graph_has_no_cycle():
    trees = _modules()
    names = set(trees)
    graph = {m: {dep for dep, _ in _imports(t, names)} for m, t in trees.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in sorted(graph.get(m, ())):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path, m, dep])
            if dep not in state:
                visit(dep, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_no_private_name_crosses_a_module():
    trees = _modules()
    names = set(trees)
    crossing = []
    for m, tree in trees.items():
        crossing += [f"{m}: from {dep} import {name}" for dep, name in _imports(tree, names)
                     if name is not None and name.startswith("_") and not name.startswith("__") and dep != m]
        aliases = {a.asname or a.name.rsplit(".", 1)[-1]: f"pkd.{a.name}" if not a.name.startswith("pkd") else a.name
                   for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "pkd"
                   for a in node.names}
        aliases.update({a.asname or a.name: a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                        for a in node.names if a.name in names})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                crossing.append(f"{m}: {node.value.id}.{node.attr}")
    assert not crossing, crossing


def test_help_and_version_do_not_load_torch():
    """`pkd --help` and `pkd --version` answer without importing torch or transformers (seconds of start-up)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom pkd.cli import main\ntry:\n    main([sys.argv[1]])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    for flag in ("--help", "--version"):
        out = subprocess.run([sys.executable, "-c", probe, flag], capture_output=True, text=True, check=True).stdout
        assert out.strip().splitlines()[-1] == "[]", out


def test_the_readme_layout_names_every_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    missing = [p.name for p in sorted(PACKAGE.glob("*.py")) if f"`pkd/{p.name}`" not in readme
               and p.name not in ("errors.py", "version.py")]
    assert not missing, f"README's layout table lacks {missing}"
    assert "`pkd/errors.py`, `pkd/version.py`" in readme


MAX_FUNCTION_LINES = 60
RUN_FILES = ("run.json", "result.json", "metrics.jsonl", "compare.json", "compare.md", "sweep.json", "export.json")


def _long_functions(trees: dict[str, ast.Module]) -> list[str]:
    return [f"{m}.{node.name}: {node.end_lineno - node.lineno + 1} lines" for m, tree in trees.items()
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def _spelled_run_files(trees: dict[str, ast.Module]) -> list[str]:
    return [f"{m}:{node.lineno}: {node.value!r}" for m, tree in trees.items() if m != "pkd.rundir"
            for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and any(node.value == name or node.value.endswith(f"/{name}") for name in RUN_FILES)]


def test_no_function_in_the_package_is_over_60_lines():
    """A function a reader can hold in view; longer ones get split by concern (a _setup_* per concern, as in
    torchtune's recipes)."""
    long = _long_functions(_modules())
    assert not long, long


def test_run_file_names_are_spelled_only_in_the_run_directory_module():
    """pkd.rundir owns the run directory's layout: any other module names its files through its constants, so a
    rename is one edit. Prose (docstrings, help texts) may mention them."""
    spelled = _spelled_run_files(_modules())
    assert not spelled, spelled


def test_the_checks_catch_a_long_function_and_a_spelled_file_name():
    source = "def f(out):\n" + "    x = 1\n" * 60 + "    return out / 'run.json'\n"
    trees = {"pkd.sample": ast.parse(source), "pkd.rundir": ast.parse("NAME = 'run.json'\n")}
    assert _long_functions(trees) == ["pkd.sample.f: 62 lines"]
    assert _spelled_run_files(trees) == ["pkd.sample:62: 'run.json'"]
