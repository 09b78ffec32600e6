"""The NVML boundary: importing `pynvml` (nvidia-ml-py), mapping its errors, and finding the
NVML device of a torch CUDA device, MIG slices included.

- Devices: each torch CUDA device is matched to its NVML handle by UUID, else by PCI bus
  id. Never by index: NVML numbers all GPUs and ignores CUDA_VISIBLE_DEVICES.
- MIG (NVML API reference, "Multi Instance GPU Management": nvmlDeviceGetMigMode,
  nvmlDeviceGetMigDeviceHandleByIndex): when a GPU's current MIG mode is enabled, CUDA
  sees MIG slices (UUID `MIG-...`), and torch's device is one slice. NVML's energy
  counter (nvmlDeviceGetTotalEnergyConsumption: "total energy consumption for this GPU")
  and power readings belong to the physical GPU, i.e. every slice together: they are not
  the slice's energy. `find_device` says so, and the source never bills the card to the
  slice.
- Errors: every pynvml call goes through `call`, the one place that maps NVMLError to
  MeterUnavailable (no driver, no permission), NotSupported, NotFound, or MeterError
  (GPU lost, anything else mid-run).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.energy.base import MeterError, MeterUnavailable


class NotSupported(Exception):
    """This GPU does not support the queried NVML feature."""


class NotFound(Exception):
    """NVML has no such object (e.g. an empty MIG device index)."""


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

        def is_(name: str) -> bool:
            return code is not None and code == getattr(nv, name, None)

        if is_("NVML_ERROR_LIBRARY_NOT_FOUND") or is_("NVML_ERROR_DRIVER_NOT_LOADED"):
            raise MeterUnavailable(
                f"no NVIDIA driver ({e})", "install the NVIDIA driver on a machine with a GPU"
            ) from e
        if is_("NVML_ERROR_NO_PERMISSION"):
            raise MeterUnavailable(
                f"NVML permission denied ({e})", "run as a user allowed to query the GPU"
            ) from e
        if is_("NVML_ERROR_NOT_SUPPORTED"):
            raise NotSupported(str(e)) from e
        if is_("NVML_ERROR_NOT_FOUND"):
            raise NotFound(str(e)) from e
        if is_("NVML_ERROR_GPU_IS_LOST"):
            raise GpuLost(f"GPU is lost ({e})") from e
        raise MeterError(f"NVML error in {getattr(fn, '__name__', fn)}: {e}") from e


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def norm_uuid(uuid: object) -> str:
    """'GPU-1A2b...' / 'MIG-1a2b...' or torch's '1a2b...' -> '1a2b...' (lowercase)."""
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


@dataclass(frozen=True)
class Device:
    """The NVML device behind one torch CUDA device. `handle` is the physical GPU's; `mig`
    is empty, or says which MIG slice torch uses and why its energy is not the slice's."""

    handle: Any
    uuid: str  # the physical GPU's, normalized
    mig: str = ""


def mig_enabled(nv: Any, handle: Any) -> bool:
    """The GPU's current MIG mode is on (pending changes apply only after a reset)."""
    if not hasattr(nv, "nvmlDeviceGetMigMode"):
        return False  # an nvidia-ml-py older than MIG
    try:
        current, _pending = call(nv, nv.nvmlDeviceGetMigMode, handle)
    except NotSupported:  # pre-Ampere, or a GPU without MIG
        return False
    return current == getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1)


def mig_slices(nv: Any, handle: Any) -> list[str]:
    """The normalized UUIDs of the MIG devices on a MIG-enabled GPU."""
    out = []
    for i in range(call(nv, nv.nvmlDeviceGetMaxMigDeviceCount, handle)):
        try:
            mig = call(nv, nv.nvmlDeviceGetMigDeviceHandleByIndex, handle, i)
        except NotFound:  # an index with no MIG device
            continue
        out.append(norm_uuid(call(nv, nv.nvmlDeviceGetUUID, mig)))
    return out


def find_device(nv: Any, index: int) -> Device:
    """The NVML device of torch CUDA device `index`: by UUID (a whole GPU's, then a MIG
    slice's), else by PCI bus id (a MIG slice shares its GPU's bus id)."""
    uuid, pci = cuda_identity(index)
    gpus = [
        call(nv, nv.nvmlDeviceGetHandleByIndex, i) for i in range(call(nv, nv.nvmlDeviceGetCount))
    ]
    uuids = [norm_uuid(call(nv, nv.nvmlDeviceGetUUID, h)) for h in gpus]
    migs = [mig_enabled(nv, h) for h in gpus]
    match = next((i for i, u in enumerate(uuids) if u == uuid), None)
    if match is None and uuid:
        match = next((i for i, h in enumerate(gpus) if migs[i] and uuid in mig_slices(nv, h)), None)
    if match is None and pci is not None:
        match = next(
            (
                i
                for i, h in enumerate(gpus)
                if parse_pci(call(nv, nv.nvmlDeviceGetPciInfo, h).busId) == pci
            ),
            None,
        )
    if match is None:
        raise MeterUnavailable(
            f"no NVML device has the UUID {uuid!r} or PCI id {pci!r} of CUDA device {index}"
        )
    mig = ""
    if migs[match]:
        name = text(call(nv, nv.nvmlDeviceGetName, gpus[match]))
        slice_id = f" (MIG-{uuid})" if uuid and uuid != uuids[match] else ""
        mig = (
            f"CUDA device {index} is a MIG slice{slice_id} of GPU-{uuids[match]} ({name}): "
            "NVML's energy counter and power readings cover the whole card, every slice "
            "together, so the GPU energy is not attributable to the slice"
        )
    return Device(gpus[match], uuids[match], mig)
