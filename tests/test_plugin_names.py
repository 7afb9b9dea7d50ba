"""Plugin names: a name two plugins claim is an error naming both distributions, whichever loads first;
the allow-list may name a distribution; broken and unavailable plugins say so by name."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
from click.testing import CliRunner

from hqf.cli import main
from hqf.errors import BackendUnavailableError, PluginConflictError, UnknownPluginError
from hqf.quantum.interfaces import Availability, Backend
from hqf.registry.hookspecs import hookimpl
from hqf.registry.loader import Registry
from hqf.registry.make import make_backend

BUILTIN_TORCH = ("torch", "hqf.backends.torch", "hqf")


class FakeEntryPoint:
    """An entry point of the ``hqf`` group from a named distribution."""

    group = "hqf"

    def __init__(self, name: str, value: str, dist: str) -> None:
        self.name, self.value, self.dist = name, value, types.SimpleNamespace(name=dist)

    def load(self):
        return importlib.import_module(self.value)


@pytest.fixture
def plugin_module(monkeypatch):
    """A throwaway module whose ``register_backends`` registers the given classes."""

    def make(modname: str, *classes: type) -> str:
        module = types.ModuleType(modname)
        module.register_backends = hookimpl(lambda register: [register(cls) for cls in classes])
        monkeypatch.setitem(sys.modules, modname, module)
        return modname

    return make


def _impostor() -> type:
    class Impostor(Backend):
        name = "torch"

        def expval(self, circuit, angles):  # pragma: no cover - never run
            raise AssertionError

    return Impostor


@pytest.mark.parametrize("third_party_first", [False, True])
@pytest.mark.parametrize("entry_point_name", ["evil", "torch"])
def test_two_plugins_registering_one_name_is_an_error_naming_both(plugin_module, third_party_first, entry_point_name):
    module = plugin_module("hqf_tests_impostor", _impostor())
    points = [FakeEntryPoint(*BUILTIN_TORCH), FakeEntryPoint(entry_point_name, module, "evil-backends")]
    reg = Registry(points[::-1] if third_party_first else points)
    with pytest.raises(PluginConflictError) as info:
        reg.get("backend", "torch")
    message = str(info.value)
    assert message.startswith("backend name 'torch' is registered by distribution ")
    assert "distribution 'hqf'" in message and "distribution 'evil-backends'" in message and "HQF_PLUGINS" in message
    assert isinstance(info.value, KeyError)
    packages = sorted(b.package for b in reg.broken)
    assert packages == ["evil-backends", "hqf"] and all("is taken" in b.error for b in reg.broken)


def test_the_allow_list_names_entry_points_or_distributions(plugin_module, monkeypatch):
    module = plugin_module("hqf_tests_impostor_allow", _impostor())
    points = [FakeEntryPoint(*BUILTIN_TORCH), FakeEntryPoint("torch", module, "evil-backends")]
    torch_cls = Registry([FakeEntryPoint(*BUILTIN_TORCH)]).get("backend", "torch").cls
    monkeypatch.setenv("HQF_PLUGINS", "torch")  # an entry-point name both distributions use: both load, loudly
    with pytest.raises(PluginConflictError):
        Registry(points).get("backend", "torch")
    for allow, expected in [("hqf", torch_cls), ("HQF", torch_cls), ("hqf:torch", torch_cls), ("evil_backends", None)]:
        monkeypatch.setenv("HQF_PLUGINS", allow)
        cls = Registry(points).get("backend", "torch").cls
        assert cls is torch_cls if expected is not None else cls.__name__ == "Impostor", allow


def test_a_broken_plugin_shows_its_import_error_where_its_name_is_asked_for(fake_plugins):
    points = [FakeEntryPoint(*BUILTIN_TORCH), FakeEntryPoint("ghost", "hqf_tests_no_such_module", "ghost-backend")]
    fake_plugins(builtins=False, entry_points=points)
    result = CliRunner().invoke(main, ["check", "--backend", "ghost"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: unknown backend 'ghost'; registered: torch; plugin 'ghost' [ghost-backend] failed to load: "
        "ModuleNotFoundError: No module named 'hqf_tests_no_such_module'"
    ]
    with pytest.raises(UnknownPluginError, match="plugins that failed to load: ghost \\[ghost-backend\\]"):
        make_backend("other")


class _Unavailable(Backend):
    name = "far-away"

    @classmethod
    def availability(cls) -> Availability:
        return Availability.missing_package("far_away_sdk", install="pip install far-away-hqf")

    def expval(self, circuit, angles):  # pragma: no cover - never run
        raise AssertionError


class _NoExpval(Backend):
    """Forgot the one required method."""

    name = "half-done"


def test_unknown_backends_list_the_registered_ones_and_which_can_run_here(plugin_module):
    module = plugin_module("hqf_tests_far", _Unavailable)
    reg = Registry([FakeEntryPoint(*BUILTIN_TORCH), FakeEntryPoint("far", module, "far-away-hqf")])
    with pytest.raises(UnknownPluginError) as info:
        reg.get("backend", "nope")
    assert str(info.value) == "unknown backend 'nope'; registered: far-away (cannot run here), torch"
    assert info.value.available == ["far-away", "torch"]


def test_an_install_hint_comes_from_the_plugin():
    assert Availability.missing_package("far_away_sdk", install="pip install far-away-hqf").reason == (
        "Python package 'far_away_sdk' is not installed (pip install far-away-hqf)"
    )
    assert Availability.missing_package("qiskit", "qiskit").reason == (
        "Python package 'qiskit' is not installed (pip install 'hqf[qiskit]')"
    )  # hqf's own extras keep their hint
    assert Availability.of_modules(("hqf_tests_no_such_sdk",), install="conda install nosuch").reason.endswith(
        "(conda install nosuch)"
    )
    assert "pip install hqf_tests_no_such_sdk" in Availability.of_modules(("hqf_tests_no_such_sdk",)).reason


def test_a_backend_without_expval_is_not_available_and_says_why(plugin_module, fake_plugins):
    module = plugin_module("hqf_tests_half", _NoExpval)
    reg = fake_plugins(entry_points=[FakeEntryPoint("half", module, "half-done")])
    availability = reg.get("backend", "half-done").availability()
    assert not availability.ok and availability.reason == "_NoExpval does not implement expval (required of a Backend)"
    with pytest.raises(BackendUnavailableError, match="does not implement expval"):
        make_backend("half-done")
    result = CliRunner().invoke(main, ["run", "--backend", "half-done", "--quiet"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "Error: backend 'half-done' is unavailable: _NoExpval does not implement expval (required of a Backend)"
    ]
