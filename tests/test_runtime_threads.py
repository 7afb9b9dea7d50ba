"""The thread policy of a run (hqf.learn.process.runtime) and the progress bar's time left (hqf.learn.process.eta)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from hqf.cli import main
from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.process import runtime
from hqf.learn.process.eta import PeriodicEta, clock
from hqf.quantum.interfaces import Backend


def test_a_number_is_taken_as_given(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.resolve_threads(5, amplitudes=1) == 5


def test_auto_takes_omp_num_threads_where_the_user_set_it(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.resolve_threads("auto", amplitudes=2**30) == 3


def test_auto_is_one_thread_for_small_work_and_the_idle_cores_for_large(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.resolve_threads("auto", amplitudes=256 * 2**8) == 1
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    monkeypatch.setattr(runtime, "idle_cores", lambda: 3)
    assert runtime.resolve_threads("auto", amplitudes=runtime.PARALLEL_AMPLITUDES) == 3


def test_idle_cores_are_between_one_and_the_usable_cores():
    assert 1 <= runtime.idle_cores() <= runtime.usable_cores()


class _Recording(Backend):
    name = "recording"

    def expval(self, circuit, angles):
        raise NotImplementedError


def test_set_threads_sets_torch_and_the_backend():
    before = torch.get_num_threads()
    backend = _Recording()
    try:
        runtime.set_threads(1, backend)
        assert torch.get_num_threads() == 1 and backend.threads == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError):
        backend.set_threads(0)


def test_qiskit_aer_gets_the_thread_count():
    pytest.importorskip("qiskit_aer")
    from hqf.backends.qiskit_aer import QiskitAerBackend

    backend = QiskitAerBackend()
    assert "max_parallel_threads" not in backend.simulator_options()
    backend.set_threads(1)
    assert backend.simulator_options()["max_parallel_threads"] == 1


@pytest.mark.parametrize("value", [0, -1, True, "many", 1.5])
def test_bad_thread_settings_are_config_errors(value):
    with pytest.raises(ConfigError, match="threads"):
        RunConfig(threads=value)
    assert RunConfig(threads=2).threads == 2 and RunConfig().threads == "auto"


def test_bad_threads_flag_is_one_line():
    result = CliRunner().invoke(main, ["run", "--threads", "0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: --threads expects auto or an integer >= 1 (got '0')"]


def test_periodic_eta_is_exact_on_a_periodic_cost_once_a_window_is_full():
    eta, now = PeriodicEta(total=200, periods=[10, 1]), 0.0
    assert eta.window == 20
    for step in range(1, 101):
        now += 1.0 if (step - 1) % 10 == 0 else 0.1  # a curvature step every tenth iteration
        eta.update(step, now)
        if step >= 21:  # a whole number of periods in the window: the mean is the schedule's own
            assert eta.seconds_left() == pytest.approx((200 - step) * 0.19)


def test_periodic_eta_needs_two_iterations_and_formats():
    eta = PeriodicEta(total=10)
    eta.update(1, 0.5)
    assert eta.seconds_left() is None and clock(None) == "?"
    assert clock(59.6) == "1:00" and clock(3725) == "1:02:05"
