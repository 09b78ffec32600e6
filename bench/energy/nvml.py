"""GPU energy through NVML (the `pynvml` module of nvidia-ml-py).

- Devices: each torch CUDA device the run uses is matched to its NVML handle by UUID, else
  by PCI bus id. Never by index: NVML numbers all GPUs and ignores CUDA_VISIBLE_DEVICES.
- Energy: `nvmlDeviceGetTotalEnergyConsumption` (mJ since driver load, Volta and newer)
  where supported, source `nvml-counter`; otherwise power integrated over the sampler's
  trace (trapezoids), source `nvml-power`. Both are kept in `details` with their
  disagreement, because on A100/H100 the power readings cover only part of each period.
- Trace: instant and average power from field values (NVML_FI_DEV_POWER_INSTANT /
  _AVERAGE) where available, `nvmlDeviceGetPowerUsage` (mW) otherwise.
- Window edges also record temperature (C), SM clock (MHz) and power limit (W).
- Errors: every pynvml call goes through `call`, the one place that maps NVMLError to
  MeterUnavailable (no driver, no permission), NotSupported, or MeterError (GPU lost,
  anything else mid-run).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.energy.base import MeterError, MeterInfo, MeterUnavailable
from bench.energy.composite import Edge, Part, TraceSample

COUNTER_PERIOD_S = 0.1  # the energy counter updates every ~20-100 ms (NVML docs)
MIN_SAMPLES = 5  # fewer power samples than this in a window: integration is unreliable


class NotSupported(Exception):
    """This GPU does not support the queried NVML feature."""


class GpuLost(MeterError):
    """The GPU stopped answering (fell off the bus, reset) during the run."""


def nvml_module() -> Any:
    """The `pynvml` module (nvidia-ml-py), imported late so tests can fake it."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as e:
        raise MeterUnavailable(
            "the pynvml module is not installed", "pip install nvidia-ml-py"
        ) from e


def call(nv: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Call one pynvml function, mapping its errors to our types (the one place)."""
    try:
        return fn(*args)
    except nv.NVMLError as e:
        code = getattr(e, "value", None)
        consts = {
            name: getattr(nv, name, None)
            for name in (
                "NVML_ERROR_LIBRARY_NOT_FOUND",
                "NVML_ERROR_DRIVER_NOT_LOADED",
                "NVML_ERROR_NO_PERMISSION",
                "NVML_ERROR_NOT_SUPPORTED",
                "NVML_ERROR_GPU_IS_LOST",
            )
        }
        if code in (consts["NVML_ERROR_LIBRARY_NOT_FOUND"], consts["NVML_ERROR_DRIVER_NOT_LOADED"]):
            raise MeterUnavailable(
                f"no NVIDIA driver ({e})", "install the NVIDIA driver on a machine with a GPU"
            ) from e
        if code == consts["NVML_ERROR_NO_PERMISSION"]:
            raise MeterUnavailable(
                f"NVML permission denied ({e})", "run as a user allowed to query the GPU"
            ) from e
        if code == consts["NVML_ERROR_NOT_SUPPORTED"]:
            raise NotSupported(str(e)) from e
        if code == consts["NVML_ERROR_GPU_IS_LOST"]:
            raise GpuLost(f"GPU is lost ({e})") from e
        raise MeterError(f"NVML error in {getattr(fn, '__name__', fn)}: {e}") from e


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def norm_uuid(uuid: object) -> str:
    """'GPU-1A2b...' or torch's '1a2b...' -> '1a2b...' (lowercase, no prefix)."""
    return re.sub(r"^(GPU|MIG)-", "", text(uuid).strip(), flags=re.I).lower()


def norm_pci(domain: int, bus: int, device: int) -> str:
    return f"{domain:08x}:{bus:02x}:{device:02x}"


def parse_pci(bus_id: str) -> str:
    """NVML's '00000000:3B:00.0' -> '00000000:3b:00'."""
    dom, bus, dev = text(bus_id).split(".")[0].split(":")
    return norm_pci(int(dom, 16), int(bus, 16), int(dev, 16))


def cuda_indices(device: str) -> list[int]:
    """The torch CUDA device indices a run on `device` uses (none for 'cpu')."""
    if not device.startswith("cuda"):
        raise MeterUnavailable(f"the run uses device '{device}', not a GPU")
    if ":" in device:
        return [int(device.split(":", 1)[1])]
    import torch

    if not torch.cuda.is_available():
        raise MeterUnavailable("torch sees no CUDA device")
    return [torch.cuda.current_device()]


def cuda_identity(index: int) -> tuple[str, str | None]:
    """(uuid, pci bus id) of torch CUDA device `index`, normalized for matching."""
    import torch

    try:
        props = torch.cuda.get_device_properties(index)
    except (AssertionError, RuntimeError) as e:  # CPU-only torch, bad index
        raise MeterUnavailable(f"torch cannot describe CUDA device {index}: {e}") from e
    uuid = norm_uuid(getattr(props, "uuid", ""))
    pci = None
    if hasattr(props, "pci_bus_id"):
        pci = norm_pci(props.pci_domain_id, props.pci_bus_id, props.pci_device_id)
    return uuid, pci


@dataclass
class Gpu:
    """One metered GPU and its running state (mutated only under the composite's lock)."""

    component: str  # gpu:<torch index>
    handle: Any
    uuid: str
    name: str
    has_counter: bool
    fields: tuple[int, ...]  # the power field ids this GPU answers (instant, average)
    power_j: float = 0.0  # trapezoid integral of the integration trace
    last: tuple[float, float] | None = None  # (t_s, watts) of the last integration sample
    n_samples: int = 0
    lost: str = ""


class NvmlSource:
    """NVML energy for the given torch CUDA device indices."""

    name = "nvml"

    def __init__(self, device: str, sample_period_s: float = 0.0) -> None:
        self.nv = nv = nvml_module()
        call(nv, nv.nvmlInit)  # first, so a machine without a driver says so
        self.sample_period_s = sample_period_s  # 0: every sampler tick
        try:
            self.gpus = [self._open(i) for i in cuda_indices(device)]
        except MeterUnavailable:
            self.close()
            raise
        self.components = tuple(g.component for g in self.gpus)

    def _open(self, index: int) -> Gpu:
        nv = self.nv
        uuid, pci = cuda_identity(index)
        handles = [
            call(nv, nv.nvmlDeviceGetHandleByIndex, i)
            for i in range(call(nv, nv.nvmlDeviceGetCount))
        ]
        match = [h for h in handles if norm_uuid(call(nv, nv.nvmlDeviceGetUUID, h)) == uuid]
        if not match and pci is not None:
            match = [
                h for h in handles if parse_pci(call(nv, nv.nvmlDeviceGetPciInfo, h).busId) == pci
            ]
        if not match:
            raise MeterUnavailable(
                f"no NVML device has the UUID {uuid!r} or PCI id {pci!r} of CUDA device {index}"
            )
        h = match[0]
        return Gpu(
            f"gpu:{index}",
            h,
            uuid,
            text(call(nv, nv.nvmlDeviceGetName, h)),
            self._supported(lambda: call(nv, nv.nvmlDeviceGetTotalEnergyConsumption, h)),
            self._power_fields(h),
        )

    @staticmethod
    def _supported(probe: Callable[[], object]) -> bool:
        try:
            probe()
        except NotSupported:
            return False
        return True

    def _power_fields(self, handle: Any) -> tuple[int, ...]:
        nv = self.nv
        ids = [
            getattr(nv, n, None) for n in ("NVML_FI_DEV_POWER_INSTANT", "NVML_FI_DEV_POWER_AVERAGE")
        ]
        ids = [i for i in ids if i is not None]
        if not ids or not hasattr(nv, "nvmlDeviceGetFieldValues"):
            return ()
        try:
            values = call(nv, nv.nvmlDeviceGetFieldValues, handle, ids)
        except NotSupported:
            return ()
        return tuple(i for i, v in zip(ids, values, strict=True) if v.nvmlReturn == nv.NVML_SUCCESS)

    # -- readings --------------------------------------------------------------------------
    def _powers_w(self, gpu: Gpu) -> dict[str, float]:
        """{'instant': W, 'average': W} from field values, else {'average': W} from
        nvmlDeviceGetPowerUsage (a ~1 s average on recent GPUs)."""
        nv = self.nv
        if gpu.fields:
            values = call(nv, nv.nvmlDeviceGetFieldValues, gpu.handle, list(gpu.fields))
            kinds = {
                getattr(nv, "NVML_FI_DEV_POWER_INSTANT", -1): "instant",
                getattr(nv, "NVML_FI_DEV_POWER_AVERAGE", -1): "average",
            }
            out = {
                kinds[f]: v.value.uiVal / 1000.0
                for f, v in zip(gpu.fields, values, strict=True)
                if v.nvmlReturn == nv.NVML_SUCCESS
            }
            if out:
                return out
        return {"average": call(nv, nv.nvmlDeviceGetPowerUsage, gpu.handle) / 1000.0}

    def _read_power(self, gpu: Gpu, t_s: float) -> list[TraceSample]:
        if gpu.lost:
            raise GpuLost(gpu.lost)
        try:
            powers = self._powers_w(gpu)
        except GpuLost as e:
            gpu.lost = f"{gpu.component} ({gpu.name}): {e}"
            raise GpuLost(gpu.lost) from e
        watts = powers.get("instant", powers.get("average", 0.0))
        if gpu.last is not None:  # trapezoid between consecutive readings
            t0, w0 = gpu.last
            gpu.power_j += 0.5 * (w0 + watts) * (t_s - t0)
        gpu.last = (t_s, watts)
        gpu.n_samples += 1
        return [TraceSample(t_s, gpu.component, k, w) for k, w in powers.items()]

    def sample(self, t_s: float) -> list[TraceSample]:
        out: list[TraceSample] = []
        for gpu in self.gpus:
            if not gpu.lost:  # a lost GPU is not asked again between windows
                out += self._read_power(gpu, t_s)
        return out

    def edge(self, t_s: float) -> Edge:
        nv, energy, samples, details, trace = self.nv, {}, {}, {}, []
        for g in self.gpus:
            trace += self._read_power(g, t_s)
            e = {"power": g.power_j}
            if g.has_counter:
                e["counter"] = call(nv, nv.nvmlDeviceGetTotalEnergyConsumption, g.handle) / 1e3
            energy[g.component], samples[g.component] = e, g.n_samples
            details[g.component] = self._state(g)
        return Edge(t_s, energy, samples, details, tuple(trace))

    def _state(self, g: Gpu) -> dict[str, object]:
        """Temperature (C), SM clock (MHz) and power limit (W) at an edge; None where the
        GPU does not say."""
        nv = self.nv
        queries = {
            "temperature_c": (
                lambda: call(nv, nv.nvmlDeviceGetTemperature, g.handle, nv.NVML_TEMPERATURE_GPU)
            ),
            "sm_clock_mhz": (
                lambda: call(nv, nv.nvmlDeviceGetClockInfo, g.handle, nv.NVML_CLOCK_SM)
            ),
            "power_limit_w": (
                lambda: call(nv, nv.nvmlDeviceGetEnforcedPowerLimit, g.handle) / 1000.0
            ),
        }
        out: dict[str, object] = {"uuid": g.uuid, "name": g.name}
        for key, query in queries.items():
            try:
                out[key] = query()
            except NotSupported:
                out[key] = None
        return out

    def measure(self, start: Edge, end: Edge) -> Part:
        joules, sources, samples, warnings, details = {}, {}, {}, [], {}
        seconds = end.t_s - start.t_s
        for g in self.gpus:
            c = g.component
            a, b = start.energy_j[c], end.energy_j[c]
            power_j = b["power"] - a["power"]
            n = end.samples[c] - start.samples[c]
            counter_j = b["counter"] - a["counter"] if "counter" in b else None
            joules[c] = counter_j if counter_j is not None else power_j
            sources[c] = "nvml-counter" if counter_j is not None else "nvml-power"
            samples[c] = n
            warnings += self._warnings(c, seconds, n, counter_j)
            details[c] = {
                "counter_j": counter_j,
                "integrated_j": power_j,
                "disagreement": disagreement(counter_j, power_j),
                "start": start.details[c],
                "end": end.details[c],
            }
        return Part(joules, sources, samples, tuple(warnings), details)

    @staticmethod
    def _warnings(comp: str, seconds: float, n: int, counter_j: float | None) -> list[str]:
        out = []
        if counter_j is not None and seconds < COUNTER_PERIOD_S:
            out.append(
                f"{comp}: window of {seconds:.3f} s is shorter than the energy "
                f"counter's update period (~{COUNTER_PERIOD_S} s)"
            )
        if counter_j is None and n < MIN_SAMPLES:
            out.append(
                f"{comp}: only {n} power samples in {seconds:.3f} s (< {MIN_SAMPLES}); "
                "integrated energy is unreliable"
            )
        return out

    def info(self) -> MeterInfo:
        has_counter = all(g.has_counter for g in self.gpus)
        return MeterInfo(
            "nvml",
            self.components,
            True,
            "measured",
            "nvml-counter" if has_counter else "nvml-power",
            "1 mJ (counter)" if has_counter else "power in mW x sample period",
            COUNTER_PERIOD_S if has_counter else self.sample_period_s or None,
        )

    def close(self) -> None:
        # shutting down a broken driver must not break the run's end
        with contextlib.suppress(MeterError, MeterUnavailable, NotSupported):
            call(self.nv, self.nv.nvmlShutdown)


def disagreement(counter_j: float | None, power_j: float) -> float | None:
    """(integrated - counter) / counter; None without a counter or with a zero counter."""
    if counter_j is None or counter_j == 0 or math.isnan(counter_j):
        return None
    return (power_j - counter_j) / counter_j


def unavailable_info(e: MeterUnavailable) -> MeterInfo:
    return MeterInfo(
        "nvml",
        (),
        False,
        "measured",
        "nvml-counter | nvml-power",
        "1 mJ (counter) or mW power",
        COUNTER_PERIOD_S,
        e.reason,
        e.fix,
    )
