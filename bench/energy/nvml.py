"""GPU energy through NVML (the `pynvml` module of nvidia-ml-py).

- Devices: `nvml_api.find_device` matches each torch CUDA device the run uses to its NVML
  handle (UUID, else PCI bus id; never by index) and tells MIG slices apart.
- Energy: `nvmlDeviceGetTotalEnergyConsumption` (mJ since driver load, Volta and newer)
  where supported, source `nvml-counter`; otherwise power integrated over the sampler's
  trace (trapezoids), source `nvml-power`. Both are kept in `details` with their
  disagreement, because on A100/H100 the power readings cover only part of each period.
- Counter faults: the counter is read on every sampler tick and at every edge and kept as
  a `CounterTrack` (bench/energy/counter.py). A window in which it went backwards (a driver
  reload or GPU reset restarts it from 0) or jumped past twice the enforced power limit
  reports integrated power instead (`nvml-power`) with a warning naming the reset.
- MIG: on a MIG-partitioned GPU the counter and power cover the whole card, so the slice's
  component is not measured (NaN J, source `none`, a warning); the whole card's figure is
  kept in `details[c]["whole_card_j"]` for reference only.
- Trace: instant and average power from field values (NVML_FI_DEV_POWER_INSTANT /
  _AVERAGE) where available, `nvmlDeviceGetPowerUsage` (mW) otherwise.
- Window edges also record temperature (C), SM clock (MHz) and power limit (W).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.energy.base import MeterError, MeterInfo, MeterUnavailable
from bench.energy.composite import Edge, Part, TraceSample
from bench.energy.counter import CounterTrack
from bench.energy.nvml_api import (
    GpuLost,
    NotSupported,
    call,
    cuda_indices,
    find_device,
    nvml_module,
    text,
)

COUNTER_PERIOD_S = 0.1  # the energy counter updates every ~20-100 ms (NVML docs)
MIN_SAMPLES = 5  # fewer power samples than this in a window: integration is unreliable
# A GPU that states no enforced power limit: above the board power of any current data
# centre GPU (B200: 1000 W, GB200: 1200 W).
DEFAULT_LIMIT_W = 1500.0
# Intervals shorter than this count as this long in the jump test: the counter updates
# every ~20-100 ms, and a late update may bring a few periods' energy at once.
JUMP_MIN_PERIOD_S = 0.5
NOT_MEASURED = "none"  # source of a MIG slice's component: the card's energy is not its own
MIG_FIX = (
    "run on a whole GPU: disable MIG (`nvidia-smi -i <gpu> -mig 0` as root, with no process "
    "on the GPU) or use a machine without MIG; metabench never bills a card to one slice"
)


@dataclass
class Gpu:
    """One metered GPU and its running state (mutated only under the composite's lock)."""

    component: str  # gpu:<torch index>
    handle: Any
    uuid: str
    name: str
    counter: CounterTrack | None  # None: the GPU has no energy counter
    fields: tuple[int, ...]  # the power field ids this GPU answers (instant, average)
    mig: str = ""  # non-empty: a MIG slice, and why its energy is not measured
    power_j: float = 0.0  # trapezoid integral of the integration trace
    last: tuple[float, float] | None = None  # (t_s, watts) of the last integration sample
    n_samples: int = 0
    lost: str = ""


class NvmlSource:
    """NVML energy for the given torch CUDA device indices."""

    name = "nvml"
    # Ten counter updates: one update's worth of quantization is then <= 10% of a window.
    min_window_s = 10 * COUNTER_PERIOD_S

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
        dev = find_device(nv, index)
        h, component = dev.handle, f"gpu:{index}"
        has_counter = self._supported(lambda: call(nv, nv.nvmlDeviceGetTotalEnergyConsumption, h))
        counter = None
        if has_counter:
            counter = CounterTrack(
                f"{component} energy counter", self._limit_w(h), None, JUMP_MIN_PERIOD_S
            )
        name = text(call(nv, nv.nvmlDeviceGetName, h))
        return Gpu(component, h, dev.uuid, name, counter, self._power_fields(h), dev.mig)

    def _limit_w(self, handle: Any) -> float:
        """The enforced power limit (W), the counter's jump bound; DEFAULT_LIMIT_W if the
        GPU does not say."""
        try:
            return call(self.nv, self.nv.nvmlDeviceGetEnforcedPowerLimit, handle) / 1000.0
        except NotSupported:
            return DEFAULT_LIMIT_W

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

    def _read(self, gpu: Gpu, t_s: float) -> list[TraceSample]:
        """Power (integrated) and, where the GPU has it, the energy counter (tracked for
        resets) at t_s; the power readings are the trace samples."""
        if gpu.lost:
            raise GpuLost(gpu.lost)
        try:
            powers = self._powers_w(gpu)
            if gpu.counter is not None:
                mj = call(self.nv, self.nv.nvmlDeviceGetTotalEnergyConsumption, gpu.handle)
                gpu.counter.update(mj / 1e3, t_s)
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
                out += self._read(gpu, t_s)
        return out

    def edge(self, t_s: float) -> Edge:
        energy, samples, details, faults, trace = {}, {}, {}, {}, []
        for g in self.gpus:
            trace += self._read(g, t_s)
            state = self._state(g)
            e = {"power": g.power_j}
            if g.counter is not None:
                e["counter"] = g.counter.total_j
                faults[g.component] = (g.counter.faults, g.counter.fault)
                if state["power_limit_w"]:  # the limit may change during a run
                    g.counter.limit_w = float(state["power_limit_w"])
            energy[g.component], samples[g.component] = e, g.n_samples
            details[g.component] = state
        return Edge(t_s, energy, samples, details, tuple(trace), faults)

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
            details[c] = {}
            if counter_j is not None and end.faults[c][0] > start.faults[c][0]:
                counter_j, details[c]["counter_fault"] = None, end.faults[c][1]
                warnings.append(
                    f"{c}: energy counter reset or jump in this window "
                    f"({end.faults[c][1]}); reporting integrated power (nvml-power) instead"
                )
            joules[c] = counter_j if counter_j is not None else power_j
            sources[c] = "nvml-counter" if counter_j is not None else "nvml-power"
            samples[c] = n
            if not g.mig:  # a slice's warning says all there is to say
                warnings += self._warnings(c, seconds, n, counter_j)
            details[c].update(
                counter_j=counter_j,
                integrated_j=power_j,
                disagreement=disagreement(counter_j, power_j),
                start=start.details[c],
                end=end.details[c],
            )
            if g.mig:  # the card's energy is every slice's: reference only, never the slice's
                details[c].update(mig=g.mig, whole_card_j=joules[c])
                joules[c], sources[c] = math.nan, NOT_MEASURED
                warnings.append(f"{c}: not measured: {g.mig}")
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
        whole = [g for g in self.gpus if not g.mig]
        has_counter = all(g.counter is not None for g in whole)
        reason = "; ".join(g.mig for g in self.gpus if g.mig)
        return MeterInfo(
            "nvml",
            self.components,
            bool(whole),
            "measured" if whole else "none",
            ("nvml-counter" if has_counter else "nvml-power") if whole else NOT_MEASURED,
            "1 mJ (counter)" if has_counter else "power in mW x sample period",
            COUNTER_PERIOD_S if has_counter else self.sample_period_s or None,
            reason,
            MIG_FIX if reason else "",
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
