"""Keep the packaging honest: every package folder is listed, and nothing escapes the hqf namespace."""

import ast
import pathlib
import re

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAPPING = {"core": "hqf", "backends": "hqf.backends", "plugins": "hqf.plugins"}


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {v: k for k, v in MAPPING.items()}
    found = set()
    for folder, name in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in rel:
                found.add(".".join((name, *rel)))
    assert found == set(config["packages"])


def test_no_bare_top_level_modules(tmp_path):
    """Outside the source tree, the installed distribution exposes only ``hqf``."""
    import subprocess
    import sys

    probe = "import importlib.util as u, hqf; print([m for m in ('core', 'backends', 'plugins') if u.find_spec(m)])"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: the hqf modules `hqf check` imports before it runs a property: the suite, the command, every plugin it loads
CHECK_PROBE = """
import json, sys
import hqf.testing, hqf.cli.check_cmd
from hqf.registry.loader import registry
registry()
print(json.dumps({name: getattr(m, "__file__", None) for name, m in sys.modules.items() if name.startswith("hqf")}))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _core_closure() -> set[str]:
    """The distributions a plain ``pip install hqf`` brings: the core dependencies and theirs, no extras."""
    from importlib import metadata

    from packaging.requirements import Requirement

    todo = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo.extend(Requirement(r) for r in metadata.requires(req.name) or ())
        except metadata.PackageNotFoundError:
            pass
    return seen


def _module_level_imports(source: str) -> set[str]:
    """Top-level package names a module imports when it is imported (not inside functions or
    ``if TYPE_CHECKING``)."""
    names: set[str] = set()
    todo = list(ast.parse(source).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
    return names


def test_hqf_check_imports_only_core_dependencies():
    """``hqf check`` and ``hqf.testing`` work on the plain install: every package that their modules (and the
    plugins the command loads) import at module level comes with the core dependencies, not with an extra."""
    import json
    import subprocess
    import sys
    from importlib import metadata

    out = subprocess.run([sys.executable, "-c", CHECK_PROBE], capture_output=True, text=True, check=True)
    files = json.loads(out.stdout.strip().splitlines()[-1])
    assert "hqf.testing.conformance" in files and "hqf.cli.check_cmd" in files
    imported = {
        (name, module)
        for name, file in files.items()
        if file
        for module in _module_level_imports(pathlib.Path(file).read_text())
        if module not in sys.stdlib_module_names and module != "hqf"
    }
    owners, closure = metadata.packages_distributions(), _core_closure()
    outside = sorted(
        f"{name} imports {module}"
        for name, module in imported
        if not any(_canonical(dist) in closure for dist in owners.get(module, []))
    )
    assert not outside, f"outside the core dependencies: {outside}"
