"""Energy used while training, from hardware counters only: RAPL on the CPU (Linux powercap), NVML on
NVIDIA GPUs. Where neither can be read the energy is None with the reason; it is never estimated
from a TDP or a utilisation figure.
"""

from __future__ import annotations

import pathlib

import attrs

#: where Linux exposes RAPL energy counters (``intel-rapl:N/energy_uj``, AMD included)
POWERCAP = pathlib.Path("/sys/class/powercap")


@attrs.frozen
class Reading:
    """Joules used between :meth:`EnergyMeter.start` and :meth:`EnergyMeter.stop` (None: not measured),
    and what measured it, or why nothing did."""

    joules: float | None
    source: str


def _rapl_packages(root: pathlib.Path) -> list[pathlib.Path]:
    """The top-level RAPL zones (``intel-rapl:0``, ``intel-rapl:1``; their sub-zones are inside them)."""
    return sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1 and (p / "energy_uj").exists())


class EnergyMeter:
    """Reads the counters at :meth:`start` and :meth:`stop`; ``device`` is the run's torch device."""

    def __init__(self, device: str = "cpu", powercap: pathlib.Path = POWERCAP) -> None:
        self.device, self.powercap = str(device), powercap
        self._start: dict[str, float] | None = None
        self._reason = ""

    def _read(self) -> dict[str, float] | None:
        if self.device.startswith("cuda"):
            return self._read_nvml()
        zones = _rapl_packages(self.powercap)
        if not zones:
            self._reason = f"no RAPL counter under {self.powercap}"
            return None
        try:
            return {str(z): float((z / "energy_uj").read_text()) for z in zones}
        except (OSError, ValueError) as exc:
            self._reason = f"RAPL counters not readable ({exc.__class__.__name__}: {exc})"
            return None

    def _read_nvml(self) -> dict[str, float] | None:
        try:
            import pynvml  # noqa: PLC0415 — optional (nvidia-ml-py), present only on NVIDIA machines

            pynvml.nvmlInit()
            index = int(self.device.partition(":")[2] or 0)
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            return {f"nvml:{index}": 1e3 * float(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))}  # mJ → µJ
        except ImportError:
            self._reason = "NVML not available (pip install nvidia-ml-py)"
        except Exception as exc:  # noqa: BLE001 - NVML raises its own error classes for unsupported GPUs
            self._reason = f"NVML energy counter not readable ({exc})"
        return None

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> Reading:
        """The energy since :meth:`start`, summed over the counters (each allowed to wrap around once)."""
        end = self._read() if self._start is not None else None
        if self._start is None or end is None or set(end) != set(self._start):
            return Reading(None, f"not measured: {self._reason or 'the counters changed during the run'}")
        total = 0.0
        for key, before in self._start.items():
            delta = end[key] - before
            if delta < 0:  # the counter wrapped: add its range
                delta += self._range(key)
            total += delta
        source = (
            "nvml"
            if self.device.startswith("cuda")
            else "rapl:" + ",".join(pathlib.Path(k).name for k in sorted(self._start))
        )
        return Reading(total * 1e-6, source)

    def _range(self, key: str) -> float:
        path = pathlib.Path(key) / "max_energy_range_uj"
        try:
            return float(path.read_text())
        except (OSError, ValueError):
            return 0.0
