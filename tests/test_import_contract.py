"""The architecture's import rules: import-linter's contracts (pyproject.toml), and the one rule it cannot
see, that the core names no module of backends/ or plugins/ (grimp reads only the folder of ``hqf``)."""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
FORBIDDEN = ("hqf.backends", "hqf.plugins")


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the test extras (pip install -e '.[test]')")
    done = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


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
    assert core_references_to_plugins() == ["core/m.py: hqf.backends.torch", "core/m.py: hqf.backends.torch.TorchBackend"]
