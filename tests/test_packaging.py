"""Keep the packaging honest: every package folder is listed, and nothing escapes the hqf namespace."""

import pathlib

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
