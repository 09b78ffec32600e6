"""CPU and RAM energy *estimates* through codecarbon, only where nothing measures them.

codecarbon's `OfflineEmissionsTracker` detects the hardware once (about 1-2 s, the first
time in a process) and builds its power models: CPU power from a TDP table (8 W for an
unknown CPU) and the machine's CPU load (10% of TDP at idle, cubic in load), RAM power
from a fixed per-DIMM model. We never `start()` the tracker (its scheduler thread and
emissions bookkeeping are not needed): our sampler asks its CPU and RAM objects for power
every `sample_period_s` and at every window edge, and integrates power x time (each CPU
reading is the load averaged since the previous one). Cost: ~0.1 ms per reading.

Every figure is labelled `estimate:codecarbon`. No network: the offline tracker only
reads codecarbon's packaged data (a test blocks sockets during a run). codecarbon swallows
exceptions and returns None, so every result is checked; its logging is silenced.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

from bench.energy.base import MeterError, MeterInfo, MeterUnavailable
from bench.energy.composite import Edge, Part, TraceSample

LABEL = "estimate:codecarbon"
SAMPLE_PERIOD_S = 0.5  # the load model needs no more; window edges read it anyway
_HARDWARE: dict[str, Any] = {}  # detected once per process: detection costs ~1-2 s


def silence_codecarbon() -> None:
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def detect_hardware() -> dict[str, Any]:
    """codecarbon's CPU and RAM power models: {'cpu': CPU, 'ram': RAM}, cached."""
    if _HARDWARE:
        return _HARDWARE
    try:
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.external.hardware import CPU
        from codecarbon.external.ram import RAM
    except ImportError as e:
        raise MeterUnavailable(
            f"codecarbon is not importable ({e})", "pip install codecarbon"
        ) from e
    silence_codecarbon()  # after the import, which sets up codecarbon's logger
    out_dir = Path(tempfile.gettempdir()) / "metabench-codecarbon"
    out_dir.mkdir(parents=True, exist_ok=True)  # codecarbon fails silently without it
    with warnings.catch_warnings():  # its deprecation notices are not the user's concern
        warnings.simplefilter("ignore")
        # never started or stopped, so it writes nothing into out_dir
        tracker = OfflineEmissionsTracker(
            country_iso_code="USA",
            output_dir=str(out_dir),
            log_level="error",
            tracking_mode="machine",
            allow_multiple_runs=True,
        )
    silence_codecarbon()  # the constructor installs its own level
    ready = getattr(tracker, "_ensure_hardware_ready", None)
    if ready is None:
        raise MeterUnavailable(
            "this codecarbon version has no _ensure_hardware_ready "
            "(metabench is written against codecarbon 3.x)"
        )
    ready()
    hardware = getattr(tracker, "_hardware", None) or []
    cpu = next((h for h in hardware if isinstance(h, CPU)), None)
    ram = next((h for h in hardware if isinstance(h, RAM)), None)
    if cpu is None or ram is None:
        raise MeterUnavailable(f"codecarbon detected no CPU/RAM power model (found {hardware})")
    _HARDWARE.update(cpu=cpu, ram=ram)
    return _HARDWARE


class CodecarbonSource:
    """Estimated CPU (`cpu:all`) and/or RAM (`dram:all`) energy of the whole machine."""

    name = "codecarbon"

    def __init__(
        self, cpu: bool = True, ram: bool = True, sample_period_s: float = SAMPLE_PERIOD_S
    ) -> None:
        hw = detect_hardware()
        self.models = {}
        if cpu:
            self.models["cpu:all"] = hw["cpu"]
            hw["cpu"].start()  # resets its load baseline
        if ram:
            self.models["dram:all"] = hw["ram"]
        self.components = tuple(self.models)
        self.sample_period_s = sample_period_s
        self.total_j = dict.fromkeys(self.components, 0.0)
        self.n_samples = dict.fromkeys(self.components, 0)
        self.last_t_s: float | None = None

    def _power_w(self, model: Any) -> float:
        try:
            power = model.total_power()
        except Exception as e:  # codecarbon's own failures: a typed error for the window
            raise MeterError(f"codecarbon power model failed: {e}") from e
        if power is None or getattr(power, "W", None) is None:
            raise MeterError(f"codecarbon power model returned {power!r}")
        return float(power.W)

    def sample(self, t_s: float) -> list[TraceSample]:
        """Power of each model since the previous reading, integrated into the totals."""
        dt = 0.0 if self.last_t_s is None else t_s - self.last_t_s
        self.last_t_s = t_s
        out = []
        for comp, model in self.models.items():
            watts = self._power_w(model)
            self.total_j[comp] += watts * dt
            self.n_samples[comp] += 1
            out.append(TraceSample(t_s, comp, "estimate", watts))
        return out

    def edge(self, t_s: float) -> Edge:
        trace = self.sample(t_s)
        return Edge(
            t_s,
            {c: {"estimate": j} for c, j in self.total_j.items()},
            dict(self.n_samples),
            {},
            tuple(trace),
        )

    def measure(self, start: Edge, end: Edge) -> Part:
        joules = {
            c: end.energy_j[c]["estimate"] - start.energy_j[c]["estimate"] for c in self.components
        }
        samples = {c: end.samples[c] - start.samples[c] for c in self.components}
        return Part(joules, dict.fromkeys(self.components, LABEL), samples)

    def describe(self) -> str:
        cpu = _HARDWARE.get("cpu")
        if cpu is None:
            return "codecarbon RAM model"
        return f"codecarbon {cpu!r}"

    def info(self) -> MeterInfo:
        return MeterInfo(
            "codecarbon",
            self.components,
            True,
            "estimated",
            LABEL,
            f"model ({self.describe()}), power x time",
            self.sample_period_s,
        )

    def close(self) -> None:
        pass


def unavailable_info(e: MeterUnavailable) -> MeterInfo:
    return MeterInfo(
        "codecarbon",
        (),
        False,
        "estimated",
        LABEL,
        "model, power x time",
        SAMPLE_PERIOD_S,
        e.reason,
        e.fix,
    )
