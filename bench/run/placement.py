"""Where a cell ran: the worker, its host, the GPU it owned, and whether its energy was its
own. Recorded in the ledger's `cells` row so the report can mark shared energy."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import torch

LOCAL_WORKER = "local"


@dataclass(frozen=True)
class Placement:
    worker: str  # executor's name for the worker: "local" or a Dask worker address
    host: str
    gpu_uuid: str | None  # NVML-style "GPU-<uuid>" of the cell's GPU; None on CPU
    # True when no other cell of the run used the metered device while this cell ran; False
    # when cells ran concurrently on one CPU package (CPU/DRAM energy is then shared).
    exclusive_energy: bool
    # torch intra-op threads: CPU float sums (and so scores) depend on it, so runs compare
    # bit for bit only at equal thread counts.
    torch_threads: int = 0


def gpu_uuid(device: str) -> str | None:
    """The NVML-style UUID of the current CUDA device (torch and NVML disagree on indices
    under CUDA_VISIBLE_DEVICES, so the UUID is what identifies a GPU across both)."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
    return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"


def here(device: str, worker: str = LOCAL_WORKER, exclusive_energy: bool = True) -> Placement:
    """The placement of a cell running in this process."""
    return Placement(
        worker, socket.gethostname(), gpu_uuid(device), exclusive_energy, torch.get_num_threads()
    )
