"""Fakes at the library boundary for the energy tests: a `pynvml` module with a
programmable power curve P(t), an energy counter and MIG slices, driven by a fake clock;
and CPU usage counters (bench.energy.load.Usage) with programmable loads."""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def sine_power(base_w: float, amp_w: float, period_s: float) -> tuple[Callable, Callable]:
    """P(t) = base + amp sin(2 pi t / period) and its exact integral from 0 (J)."""
    w = 2 * math.pi / period_s

    def power(t: float) -> float:
        return base_w + amp_w * math.sin(w * t)

    def energy(t: float) -> float:
        return base_w * t + amp_w / w * (1 - math.cos(w * t))

    return power, energy


@dataclass
class FakeGpu:
    uuid: str  # NVML form: GPU-...
    bus_id: str  # NVML form: 00000000:3B:00.0
    power: Callable[[float], float]
    energy: Callable[[float], float]
    has_counter: bool = True
    has_fields: bool = True
    lost: bool = False
    mig_slices: tuple[str, ...] | None = None  # MIG mode on: the slices' MIG-... UUIDs
    limit_w: float = 300.0  # enforced power limit


@dataclass
class FakeMig:
    """A MIG device handle: a slice of `parent`."""

    uuid: str
    parent: FakeGpu


def make_pynvml(clock: FakeClock, gpus: list[FakeGpu], driver: bool = True) -> types.ModuleType:
    nv = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    def sub(name: str, value: int) -> type:
        cls = type(name, (NVMLError,), {"__init__": lambda self: NVMLError.__init__(self, value)})
        setattr(nv, name, cls)
        return cls

    nv.NVMLError = NVMLError
    codes = {
        "NVML_ERROR_UNINITIALIZED": 1,
        "NVML_ERROR_NOT_SUPPORTED": 3,
        "NVML_ERROR_NO_PERMISSION": 4,
        "NVML_ERROR_NOT_FOUND": 6,
        "NVML_ERROR_DRIVER_NOT_LOADED": 9,
        "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
        "NVML_ERROR_GPU_IS_LOST": 15,
    }
    for k, v in codes.items():
        setattr(nv, k, v)
    not_supported = sub("NVMLError_NotSupported", 3)
    lost_err = sub("NVMLError_GpuIsLost", 15)
    no_lib = sub("NVMLError_LibraryNotFound", 12)
    not_found = sub("NVMLError_NotFound", 6)
    nv.NVML_DEVICE_MIG_DISABLE, nv.NVML_DEVICE_MIG_ENABLE = 0, 1
    nv.NVML_SUCCESS, nv.NVML_TEMPERATURE_GPU, nv.NVML_CLOCK_SM = 0, 0, 1
    nv.NVML_FI_DEV_POWER_AVERAGE, nv.NVML_FI_DEV_POWER_INSTANT = 185, 186
    nv.calls = {"power": 0}

    def live(h: FakeGpu) -> FakeGpu:
        if h.lost:
            raise lost_err()
        return h

    def mig_mode(h: FakeGpu) -> list[int]:
        on = live(h).mig_slices is not None
        return [int(on), int(on)]

    def mig_handle(h: FakeGpu, i: int) -> FakeMig:
        slices = live(h).mig_slices or ()
        if i >= len(slices):
            raise not_found()
        return FakeMig(slices[i], h)

    def uuid(h: FakeGpu | FakeMig) -> str:
        return h.uuid if isinstance(h, FakeMig) else live(h).uuid

    def init() -> None:
        if not driver:
            raise no_lib()

    def energy_mj(h: FakeGpu) -> int:
        if not live(h).has_counter:
            raise not_supported()
        return round(h.energy(clock()) * 1000)

    def fields(h: FakeGpu, ids: list[int]) -> list:
        mw = round(live(h).power(clock()) * 1000)
        ret = 0 if h.has_fields else 3
        return [SimpleNamespace(nvmlReturn=ret, value=SimpleNamespace(uiVal=mw)) for _ in ids]

    def power_usage(h: FakeGpu) -> int:
        nv.calls["power"] += 1
        return round(live(h).power(clock()) * 1000)

    nv.nvmlInit = init
    nv.nvmlShutdown = lambda: None
    nv.nvmlDeviceGetCount = lambda: len(gpus)
    nv.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    nv.nvmlDeviceGetUUID = uuid
    nv.nvmlDeviceGetMigMode = mig_mode
    nv.nvmlDeviceGetMaxMigDeviceCount = lambda h: 7 if live(h).mig_slices is not None else 0
    nv.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle
    nv.nvmlDeviceGetPciInfo = lambda h: SimpleNamespace(busId=live(h).bus_id)
    nv.nvmlDeviceGetName = lambda h: "Fake GPU"
    nv.nvmlDeviceGetTotalEnergyConsumption = energy_mj
    nv.nvmlDeviceGetFieldValues = fields
    nv.nvmlDeviceGetPowerUsage = power_usage
    nv.nvmlDeviceGetTemperature = lambda h, kind: 40 + live(h).power(clock()) / 10
    nv.nvmlDeviceGetClockInfo = lambda h, kind: 1410
    nv.nvmlDeviceGetEnforcedPowerLimit = lambda h: round(live(h).limit_w * 1000)
    return nv


def torch_props(uuid: str, bus: int, domain: int = 0, device: int = 0) -> SimpleNamespace:
    """What torch.cuda.get_device_properties(i) says: uuid without the GPU- prefix."""
    return SimpleNamespace(
        uuid=uuid.removeprefix("GPU-"), pci_bus_id=bus, pci_domain_id=domain, pci_device_id=device
    )


def install(
    monkeypatch,
    clock: FakeClock,
    gpus: list[FakeGpu],
    torch_devices: dict[int, SimpleNamespace],
    driver: bool = True,
):
    """Put the fake pynvml into sys.modules and fake torch's CUDA device properties."""
    import torch

    nv = make_pynvml(clock, gpus, driver)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", nv)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: torch_devices[i])
    return nv


class FakeUsage:
    """CPU counters (bench.energy.load.Usage) of a machine with `cpus` logical CPUs, on the
    fake clock: between two readings this process used `process` and other processes
    `foreign` of the machine's capacity (shares 0..1, changeable). Every reader sees the
    same cumulative counters, as with /proc."""

    def __init__(
        self,
        clock: FakeClock,
        cpus: int = 2,
        process: float = 0.0,
        foreign: float = 0.0,
        rss_bytes: float = 2 * 2**30,
    ) -> None:
        self.clock, self.cpus = clock, cpus
        self.process, self.foreign, self.rss_bytes = process, foreign, rss_bytes
        self.t = clock()
        self.process_s = self.busy_s = 0.0
        self.total_s = 1000.0  # since boot

    def __call__(self):
        from bench.energy.load import Usage

        capacity = (self.clock() - self.t) * self.cpus
        self.t = self.clock()
        self.process_s += capacity * self.process
        self.busy_s += capacity * (self.process + self.foreign)
        self.total_s += capacity
        return Usage(self.process_s, self.busy_s, self.total_s, self.rss_bytes)


def powercap_zone(path, name: str, energy_uj: int, max_uj: int = 1_000_000_000):
    """A fake powercap zone directory (name, energy_uj, max_energy_range_uj) at `path`."""
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_uj(path, value: int, max_uj: int = 1_000_000_000) -> None:
    (path / "energy_uj").write_text(f"{value % max_uj}\n")
