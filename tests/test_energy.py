"""Energy from hardware counters (hqf.learn.process.energy), tested on a fake powercap tree."""

from __future__ import annotations

import pytest

from hqf.learn.process.energy import EnergyMeter


def _zone(root, name, energy_uj, max_range=1_000_000):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone


def test_rapl_packages_are_summed_and_their_sub_zones_left_out(tmp_path):
    packages = [_zone(tmp_path, "intel-rapl:0", 100), _zone(tmp_path, "intel-rapl:1", 200)]
    sub = _zone(packages[0], "intel-rapl:0:0", 50)
    meter = EnergyMeter("cpu", powercap=tmp_path)
    meter.start()
    (packages[0] / "energy_uj").write_text("2100\n")  # +2,000 µJ
    (packages[1] / "energy_uj").write_text("1200\n")  # +1,000 µJ
    (sub / "energy_uj").write_text("999999\n")  # a sub-zone of package 0: not counted again
    reading = meter.stop()
    assert reading.joules == pytest.approx(3000e-6)
    assert reading.source == "rapl:intel-rapl:0,intel-rapl:1"


def test_a_counter_that_wraps_adds_its_range(tmp_path):
    zone = _zone(tmp_path, "intel-rapl:0", 999_000, max_range=1_000_000)
    meter = EnergyMeter("cpu", powercap=tmp_path)
    meter.start()
    (zone / "energy_uj").write_text("500\n")  # wrapped: 1,000 to the top, then 500
    assert meter.stop().joules == pytest.approx(1500e-6)


def test_no_counter_is_none_with_the_reason(tmp_path):
    meter = EnergyMeter("cpu", powercap=tmp_path / "absent")
    meter.start()
    reading = meter.stop()
    assert reading.joules is None and "no RAPL counter" in reading.source


def test_an_unreadable_counter_is_none_with_the_reason(tmp_path):
    zone = _zone(tmp_path, "intel-rapl:0", 10)
    (zone / "energy_uj").write_text("not a number\n")
    meter = EnergyMeter("cpu", powercap=tmp_path)
    meter.start()
    assert meter.stop().joules is None
