"""The architecture's import rules: import-linter's contracts (pyproject.toml), checked on a tree of links in
which backends/ and plugins/ sit inside ``hqf`` (grimp reads only the folder of ``hqf``, core/), and the one
rule import-linter cannot see, that the core names no module of backends/ or plugins/, not even in a string.

From the shell, ``python tests/test_import_contract.py`` builds the tree and runs ``lint-imports`` on it.
"""

from __future__ import annotations

import ast
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
FORBIDDEN = ("hqf.backends", "hqf.plugins")
#: sub-package of ``hqf`` -> the folder that holds it (pyproject's package-dir)
MAPPED = {"backends": ROOT / "backends", "plugins": ROOT / "plugins"}


def link_tree(dest: pathlib.Path) -> pathlib.Path:
    """Make ``dest/hqf`` the package as installed: core/'s modules, with backends/ and plugins/ inside it.
    Folders are real and every file a link to the original, so a test may add a module anywhere without
    touching the tree. Returns ``dest``, the folder to put on ``sys.path``."""
    package = dest / "hqf"
    _mirror(CORE, package)
    for name, folder in MAPPED.items():
        _mirror(folder, package / name)
    return dest


def _mirror(source: pathlib.Path, target: pathlib.Path) -> None:
    """Real folders for ``source``'s folders, links for its Python files."""
    target.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.is_dir() and entry.name != "__pycache__":
            _mirror(entry, target / entry.name)
        elif entry.suffix == ".py":
            (target / entry.name).symlink_to(entry)


def lint_imports(tree: pathlib.Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with pyproject's contracts, importing ``hqf`` from ``tree`` (first on ``sys.path``)."""
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the test extras (pip install -e '.[test]')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])]))
    command = [exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def test_import_linter_contracts_are_kept(tmp_path):
    done = lint_imports(link_tree(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _python_files(folder: pathlib.Path) -> set[pathlib.Path]:
    return {p.relative_to(folder) for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def test_the_link_tree_holds_every_module_of_core_backends_and_plugins_as_a_link(tmp_path):
    package = link_tree(tmp_path) / "hqf"
    expected = _python_files(CORE) | {name / p for name, folder in MAPPED.items() for p in _python_files(folder)}
    assert _python_files(package) == expected
    for path in package.rglob("*"):
        assert path.is_symlink() != path.is_dir(), path  # folders are real: adding a file never touches the tree
    assert (package / "backends" / "torch" / "backend.py").resolve() == ROOT / "backends" / "torch" / "backend.py"


def test_a_plugin_importing_learn_is_reported(tmp_path):
    tree = link_tree(tmp_path)
    (tree / "hqf" / "plugins" / "reaches_up.py").write_text("from hqf.learn.training import model\n")
    done = lint_imports(tree)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "hqf.plugins is not allowed to import hqf.learn" in done.stdout
    assert "hqf.plugins.reaches_up -> hqf.learn.training" in done.stdout


def test_a_cycle_in_the_torch_backend_is_reported(tmp_path):
    tree = link_tree(tmp_path)
    torch_backend = tree / "hqf" / "backends" / "torch"
    (torch_backend / "cycle_a.py").write_text("from hqf.backends.torch import cycle_b\n")
    (torch_backend / "cycle_b.py").write_text("from hqf.backends.torch import cycle_a\n")
    done = lint_imports(tree)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "No cycles are allowed in hqf.backends.torch" in done.stdout
    assert ".cycle_a -> .cycle_b" in done.stdout or ".cycle_b -> .cycle_a" in done.stdout


def _named_modules(tree: ast.AST):
    """Every module an import statement names, and every string constant that looks like a module path."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value.split(":")[0]


def core_references_to_plugins() -> list[str]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for name in _named_modules(ast.parse(path.read_text(), str(path))):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                found.append(f"{path.relative_to(ROOT)}: {name}")
    return found


def test_core_names_no_backend_or_plugin_module():
    assert core_references_to_plugins() == []


def test_the_scan_finds_a_forbidden_import(tmp_path, monkeypatch):
    bad = tmp_path / "core"
    bad.mkdir()
    (bad / "m.py").write_text("def f():\n    from hqf.backends.torch import TorchBackend\n")
    monkeypatch.setattr(sys.modules[__name__], "CORE", bad)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert core_references_to_plugins() == [
        "core/m.py: hqf.backends.torch",
        "core/m.py: hqf.backends.torch.TorchBackend",
    ]


def main() -> int:
    """Run ``lint-imports`` on a fresh link tree and print its report; the exit status is its own."""
    with tempfile.TemporaryDirectory(prefix="hqf-imports-") as folder:
        done = lint_imports(link_tree(pathlib.Path(folder)))
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
