"""``hqf list`` reads what the plugins declare without importing torch or a plugin, lists what they register,
and still reports a plugin that cannot load."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hqf.cli.list_cmd import list_command
from hqf.errors import UnknownPluginError
from hqf.registry import catalog, loader

#: runs ``hqf list`` in a fresh interpreter, then prints the modules it imported
PROBE = """
import json, sys
from hqf.cli import main
try:
    main(["list"], prog_name="hqf")
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_hqf_list_in_a_fresh_process_imports_neither_torch_nor_a_plugin(tmp_path):
    # cwd: the installed metadata, not a stray *.egg-info of the working tree
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=tmp_path)
    modules = set(json.loads(out.stderr.strip().splitlines()[-1]))
    assert "torch" not in modules, "hqf list imported torch (is the installed metadata current? pip install -e .)"
    assert not {m for m in modules if m.startswith(("hqf.backends.", "hqf.plugins.", "hqf.quantum."))}
    lines = [line.split() for line in out.stdout.splitlines()]
    assert ["torch", "[hqf]", "available"] in lines and ["hea{Q}x{L}", "[hqf]", "available"] in lines


def test_the_declared_classes_are_what_the_plugins_register(monkeypatch):
    monkeypatch.delenv("HQF_PLUGINS", raising=False)
    read = catalog.read_catalog()
    assert not read.undeclared and not read.problems
    registry = loader.Registry().load()
    registered = {
        (kind, e.name, e.plugin, e.package, f"{e.cls.__module__}:{e.cls.__qualname__}", e.availability().ok)
        for kind in loader.KINDS
        for e in registry.entries(kind)
    }
    declared = {(d.kind, d.name, d.plugin, d.package, d.value.split()[0], d.missing() is None) for d in read.declared}
    assert declared == registered


def test_the_catalog_and_the_registry_have_the_same_kinds():
    assert catalog.KINDS == tuple(loader.KINDS)


def test_a_declared_extra_is_available_when_any_one_of_them_is_installed():
    entry = catalog.Declared("backend", "x", "x", "hqf", "m:X", ("no-such-extra", "test"))
    assert entry.missing() is None  # pytest, import-linter and ruff: the test extra
    alone = catalog.Declared("backend", "x", "x", "hqf", "m:X", ("no-such-extra",))
    assert alone.missing() == "'no-such-extra' is not an extra of hqf"


def _entry_points(points: dict[str, list[tuple[str, str]]]):
    fake = {
        group: [importlib.metadata.EntryPoint(name=n, value=v, group=group) for n, v in items]
        for group, items in points.items()
    }
    return lambda group=None: fake.get(group, [])


@pytest.fixture
def no_registry():
    """No process registry during the test (``hqf list`` reads the catalog), the previous one after."""
    previous = loader.use_registry(None)
    yield
    loader.use_registry(previous)


def test_a_plugin_that_cannot_load_is_listed_as_broken_and_reported_when_used(monkeypatch, no_registry):
    monkeypatch.delenv("HQF_PLUGINS", raising=False)
    fake = _entry_points(
        {
            "hqf": [
                ("torch", "hqf.backends.torch"),
                ("ghost", "hqf_tests_no_such_module"),  # declares its class
                ("phantom", "hqf_tests_no_such_module_either"),  # declares nothing: imported to be listed
            ],
            "hqf.backend": [
                ("torch", "hqf.backends.torch.backend:TorchBackend"),
                ("ghost", "hqf_tests_no_such_module:Ghost"),
                ("stray", "hqf_tests_elsewhere:Stray"),  # in no plugin's module
            ],
        }
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    result = CliRunner().invoke(list_command, [])
    assert result.exit_code == 0, result.output
    listed, broken = result.output.split("broken plugins:\n")
    assert [line.split()[0] for line in listed.splitlines() if line.startswith("  ")] == ["torch"] + ["(none)"] * 6
    assert broken.splitlines() == [
        "  ?:stray  [?]  declares backend 'stray' in hqf_tests_elsewhere, which no plugin contains",
        "  ghost  [?]  ModuleNotFoundError: No module named 'hqf_tests_no_such_module'",
        "  phantom  [?]  ModuleNotFoundError: No module named 'hqf_tests_no_such_module_either'",
    ]
    with pytest.raises(UnknownPluginError, match="plugin 'ghost' \\[\\?\\] failed to load: ModuleNotFoundError"):
        loader.registry().get("backend", "ghost")


def test_a_name_two_declared_plugins_register_is_listed_for_both(monkeypatch, no_registry):
    monkeypatch.delenv("HQF_PLUGINS", raising=False)
    fake = _entry_points(
        {
            "hqf": [("torch", "hqf.backends.torch"), ("other", "hqf.plugins.encoders")],
            "hqf.backend": [
                ("torch", "hqf.backends.torch.backend:TorchBackend"),
                ("torch", "hqf.plugins.encoders.angle:AngleEncoder"),
            ],
        }
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    result = CliRunner().invoke(list_command, [])
    assert result.exit_code == 0, result.output
    assert "  torch  [?]  not used: also registered by plugin 'other' [?]; choose one with HQF_PLUGINS" in result.output
    assert (
        "  other  [?]  backend name 'torch' is taken: also registered by plugin 'torch' [?]; neither is used"
        in (result.output.split("broken plugins:")[1])
    )


def test_the_allowlist_limits_what_is_listed_without_reporting_the_others(monkeypatch, no_registry):
    monkeypatch.setenv("HQF_PLUGINS", "torch,ansatze")
    result = CliRunner().invoke(list_command, [])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line.startswith("  ")]
    assert listed == ["torch", "(none)", "basic{Q}x{L}", "hea{Q}x{L}", "sel{Q}x{L}"] + ["(none)"] * 4
    assert "broken plugins:" not in result.output


def test_hqf_list_into_a_closed_pipe_prints_no_error():
    import subprocess
    import sys

    pipeline = f"{sys.executable} -m hqf list | head -1"
    done = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "backends:"
    assert "Error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
