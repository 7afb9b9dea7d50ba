"""docs/architecture.md keeps up with the tree: it names every module of the package (core/, backends/,
plugins/) by dotted name or by path, and every module, attribute or file of the package it names exists."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
#: dotted package -> the folder that holds it (pyproject's package-dir)
FOLDERS = {"hqf": ROOT / "core", "hqf.backends": ROOT / "backends", "hqf.plugins": ROOT / "plugins"}
DOTTED = re.compile(r"(?<![\w./-])hqf(?:\.\w+)+")
PATH = re.compile(r"(?<![\w./-])(?:core|backends|plugins)(?:/[\w.-]+)+/?")


def modules() -> dict[str, pathlib.Path]:
    """Every module of the package by dotted name (a package by its own name), with its file."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            found[".".join((package, *parts[: -1 if parts[-1] == "__init__" else None]))] = path
    return found


def _names(dotted: str, path: pathlib.Path) -> list[str]:
    """The ways the page may name a module: dotted, its file's path, a package's folder."""
    relative = path.relative_to(ROOT).as_posix()
    names = [dotted, relative]
    if path.name == "__init__.py":
        names.append(relative.removesuffix("__init__.py"))
    return names


def _mentioned(name: str, text: str) -> bool:
    """Whether ``name`` occurs as a whole name (``hqf.learn.data`` is not named by ``hqf.learn.data.load``)."""
    return re.search(rf"(?<![\w./-]){re.escape(name)}(?![\w-]|\.\w|/\w)", text) is not None


def unnamed(text: str) -> list[str]:
    """The modules ``text`` does not name."""
    return [dotted for dotted, path in modules().items() if not any(_mentioned(n, text) for n in _names(dotted, path))]


def _resolves(dotted: str, known: dict[str, pathlib.Path]) -> bool:
    """A module, or a module's attribute: its first part after the longest module prefix is a name in the
    module's source."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if module in known:
            return cut == len(parts) or re.search(rf"\b{parts[cut]}\b", known[module].read_text()) is not None
    return False


def stale(text: str) -> list[str]:
    """Dotted names of the package and paths under core/, backends/, plugins/ in ``text`` that do not exist."""
    known = modules()
    names = {m.rstrip(".") for m in DOTTED.findall(text)}
    paths = {p.rstrip(".") for p in PATH.findall(text)}
    return sorted([n for n in names if not _resolves(n, known)] + [p for p in paths if not (ROOT / p).exists()])


def test_every_module_is_named_in_the_architecture_page():
    assert unnamed(DOC.read_text()) == [], "name these modules in docs/architecture.md"


def test_every_name_on_the_architecture_page_exists():
    assert stale(DOC.read_text()) == [], "docs/architecture.md names what the tree does not hold"


def test_a_module_is_named_by_dotted_name_path_or_folder_and_only_as_a_whole():
    everything = set(modules())
    assert "hqf.learn.config" in everything and "hqf.backends.torch" in everything and "hqf.plugins" in everything
    assert set(unnamed("")) == everything
    left = set(unnamed("`hqf.learn.config`, core/quantum/gates.py, backends/torch/, hqf.learn.training.loop."))
    assert everything - left == {
        "hqf.learn.config",
        "hqf.quantum.gates",
        "hqf.backends.torch",
        "hqf.learn.training.loop",
    }
    assert "hqf.learn.training" in unnamed("hqf.learn.training.loop and core/learn/training/loop.py")
    assert "hqf.learn.rundir" in unnamed("hqf.learn.rundir-like")


def test_a_name_that_is_not_in_the_tree_is_stale():
    assert stale("`hqf.learn.config.RunConfig`, hqf.quantum.gates, core/learn/config.py, backends/torch/.") == []
    assert stale("hqf.learn.sets, hqf.learn.config.NoSuchThing, core/learn/sets.py, plugins/x/") == [
        "core/learn/sets.py",
        "hqf.learn.config.NoSuchThing",
        "hqf.learn.sets",
        "plugins/x/",
    ]
