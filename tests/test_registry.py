import importlib.metadata
import sys
import types

import pytest

from hqf.backends.torch import TorchBackend
from hqf.errors import UnknownPluginError
from hqf.registry.hookspecs import hookimpl
from hqf.registry.loader import Registry, registry


def _ep(name, value):
    return importlib.metadata.EntryPoint(name=name, value=value, group="hqf")


@pytest.fixture
def fake_module(monkeypatch):
    """Put a throwaway plugin module on sys.modules for the duration of a test."""

    def make(modname, **hooks):
        module = types.ModuleType(modname)
        for hook, fn in hooks.items():
            setattr(module, hook, hookimpl(fn))
        monkeypatch.setitem(sys.modules, modname, module)
        return module

    return make


def test_broken_import_is_recorded_and_the_rest_works():
    reg = Registry([_ep("torch", "hqf.backends.torch"), _ep("ghost", "hqf_tests_no_such_module")])
    assert reg.names("backend") == ["torch"]
    [broken] = reg.broken
    assert broken.plugin == "ghost" and "ModuleNotFoundError" in broken.error


def test_failing_hook_is_recorded_and_the_rest_works(fake_module):
    def register_backends(register):
        raise RuntimeError("boom")

    fake_module("hqf_tests_bad_hook", register_backends=register_backends)
    reg = Registry([_ep("torch", "hqf.backends.torch"), _ep("bad", "hqf_tests_bad_hook")])
    assert reg.names("backend") == ["torch"]
    assert [(b.plugin, b.error) for b in reg.broken] == [("bad", "register_backends: RuntimeError: boom")]


def test_trace_hooks_writes_each_plugins_hook_call(fake_module, monkeypatch, capsys):
    fake_module("hqf_tests_traced_a", register_backends=lambda register: register(TorchBackend))
    fake_module("hqf_tests_traced_b", register_backends=lambda register: None)
    points = [_ep("a", "hqf_tests_traced_a"), _ep("b", "hqf_tests_traced_b")]
    monkeypatch.setenv("HQF_TRACE_HOOKS", "1")
    assert Registry(points).names("backend") == ["torch"]
    trace = capsys.readouterr().err
    assert trace.count("register_backends [hook]") == 2  # one call per plugin, each through pluggy
    assert trace.count("finish register_backends") == 2 and "plugin='a'" in trace and "plugin='b'" in trace
    monkeypatch.delenv("HQF_TRACE_HOOKS")
    assert Registry(points).names("backend") == ["torch"] and capsys.readouterr().err == ""


def test_wrong_class_and_duplicates_name_the_culprit(fake_module):
    fake_module("hqf_tests_wrong", register_backends=lambda register: register(int))
    fake_module("hqf_tests_dup", register_backends=lambda register: register(TorchBackend))
    reg = Registry([_ep("torch", "hqf.backends.torch"), _ep("wrong", "hqf_tests_wrong"), _ep("dup", "hqf_tests_dup")])
    assert reg.names("backend") == ["torch"]
    errors = {b.plugin: b.error for b in reg.broken}
    assert "must subclass hqf.quantum.interfaces.Backend" in errors["wrong"]
    assert "backend name 'torch' is taken" in errors["dup"]


def test_bad_hook_signature_is_rejected_at_registration(fake_module):
    fake_module("hqf_tests_sig", register_backends=lambda reg, extra: None)
    reg = Registry([_ep("sig", "hqf_tests_sig")])
    assert reg.names("backend") == []
    assert reg.broken[0].plugin == "sig"


def test_unknown_name_lists_available():
    with pytest.raises(UnknownPluginError) as info:
        registry().get("backend", "nope")
    assert "unknown backend 'nope'; registered:" in str(info.value) and "torch" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_allowlist_env(monkeypatch):
    points = [_ep("torch", "hqf.backends.torch"), _ep("ansatze", "hqf.plugins.ansatze")]
    monkeypatch.setenv("HQF_PLUGINS", "ansatze")
    reg = Registry(points)
    assert reg.names("backend") == [] and reg.names("ansatz") == ["basic", "hea", "sel"]
    monkeypatch.setenv("HQF_PLUGINS", "")
    assert Registry(points).names("ansatz") == []


def test_builtins_come_through_the_public_entry_points():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="hqf")}
    assert names["torch"] == "hqf.backends.torch"
    entry = registry().get("backend", "torch")
    assert entry.package == "hqf" and entry.cls is TorchBackend and entry.availability().ok
