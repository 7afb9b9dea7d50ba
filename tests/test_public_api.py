"""``import hqf``: the public names, imported lazily, each documented, and docs/api.md's example runs."""

from __future__ import annotations

import inspect
import json
import pathlib
import re
import subprocess
import sys

import pytest

import hqf

API_PAGE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", API_PAGE.read_text(), flags=re.S)
NAMES = [name for name in hqf.__all__ if name != "__version__"]


def test_import_hqf_loads_neither_torch_nor_numpy_nor_a_plugin():
    code = "import json, sys, hqf; print(json.dumps(sorted(sys.modules)))"
    modules = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout))
    assert "hqf" in modules
    assert not {"torch", "numpy", "hqf.backends", "hqf.plugins", "hqf.registry.loader"} & modules


def test_the_public_names_include_what_a_user_needs():
    for name in ("Circuit", "QuantumLayer", "make_backend", "expval", "load", "NoiseModel", "noise_model"):
        assert name in hqf.__all__ and name in dir(hqf)


@pytest.mark.parametrize("name", NAMES)
def test_every_public_name_resolves_and_has_a_docstring(name):
    value = getattr(hqf, name)
    assert inspect.getdoc(value), f"hqf.{name} has no docstring"
    if name in hqf.PUBLIC:
        assert value is getattr(sys.modules[hqf.PUBLIC[name]], name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Circuits'"):
        hqf.Circuits  # noqa: B018
    assert not hasattr(hqf, "make_fusion")


def test_the_api_page_lists_every_public_name():
    rows = re.findall(r"^\| (`hqf\.\w+`(?:, `hqf\.\w+`)*) \|", API_PAGE.read_text(), flags=re.M)
    listed = {name for row in rows for name in re.findall(r"`hqf\.(\w+)`", row)}
    assert listed == set(NAMES)


def test_the_api_page_example_runs(tmp_path, monkeypatch, capsys):
    """The page's first block: circuits, values, gradients, noise and a QuantumLayer."""
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[0], "docs/api.md block 1", "exec"), {"__name__": "__api__"})
    assert "torch.Size([8, 4])" in capsys.readouterr().out


@pytest.mark.slow
def test_the_api_page_run_and_load_example_runs(tmp_path, monkeypatch, capsys):
    """Every block in order, the run and its loaded model included."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__api__"}
    for index, block in enumerate(BLOCKS, start=1):
        exec(compile(block, f"docs/api.md block {index}", "exec"), namespace)
    assert "accuracy" in capsys.readouterr().out and (tmp_path / "runs" / "api" / "metrics.json").is_file()
