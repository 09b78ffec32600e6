"""Which device a run uses, checked where the cells run.

A local run checks its device here, on the machine that runs the command. A run on an
existing Dask cluster (`--executor dask`) does not: the driver may be a login node without
a GPU, so each worker checks its own device before its cell (`check_worker_device`).
"""

from __future__ import annotations

import contextlib
import os

from bench.errors import MetabenchError

DEVICES = ("cpu", "cuda", "auto")
CUDA_WHEEL_HINT = (
    "install a CUDA build of torch (e.g. `make install` without TORCH=..., or "
    "`pip install torch --index-url https://download.pytorch.org/whl/cu128`)"
)


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def nvidia_gpu_count() -> int:
    """GPUs the NVIDIA driver reports through NVML (0 without a driver or pynvml), whatever
    torch was built for."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no pynvml, no driver, no permission: no GPU we could use
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return 0
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def cpu_only_torch_note() -> str | None:
    """A sentence when this torch build cannot use the machine's NVIDIA GPUs, else None."""
    import torch

    if torch.version.cuda is not None or torch.cuda.is_available():
        return None
    n = nvidia_gpu_count()
    if n == 0:
        return None
    return (
        f"this machine has {n} NVIDIA GPU{'s' if n > 1 else ''} but torch "
        f"{torch.__version__} is a CPU-only build, so runs use the CPU; to use the GPU, "
        f"{CUDA_WHEEL_HINT}"
    )


def resolve_device(flag: str, where: str = "--device", *, local: bool = True) -> str:
    """'cpu' or 'cuda' for the --device flag ('cpu', 'cuda' or 'auto').

    local=False (cells run on Dask workers): 'cuda' is not checked here, the workers check
    it (`check_worker_device`); 'auto' is refused, as the driver cannot see the workers.
    Raises MetabenchError for an unknown value or, locally, 'cuda' without a CUDA device.
    """
    if flag not in DEVICES:
        raise MetabenchError(f"{where}: expected one of {', '.join(DEVICES)}, found {flag!r}")
    if not local:
        if flag == "auto":
            raise MetabenchError(
                f"{where}: expected cpu or cuda with --executor dask (the workers' devices "
                "are not visible from here), found auto"
            )
        return flag
    import torch

    if flag == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if flag == "cuda" and not torch.cuda.is_available():
        why = cpu_only_torch_note() or "torch sees no CUDA device"
        raise MetabenchError(
            f"{where}: expected a visible CUDA device, found none ({why}); use --device cpu or auto"
        )
    return flag


def torch_device(flag: str, where: str = "--device"):
    """A benchmark's --device ('cpu', 'cuda', 'cuda:N' or 'auto') as a torch.device,
    checked as `resolve_device` checks it (MetabenchError naming `where`)."""
    import torch

    kind, _, index = flag.partition(":")
    resolved = resolve_device(kind, where)
    return torch.device(f"cuda:{index}" if index and resolved == "cuda" else resolved)


def check_worker_device(device: str, worker: str) -> None:
    """On a worker, before a cell: the cell's device must exist there."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        why = cpu_only_torch_note() or "torch sees no CUDA device"
        raise MetabenchError(
            f"worker {worker}: expected a visible CUDA device for --device cuda, found none ({why})"
        )
