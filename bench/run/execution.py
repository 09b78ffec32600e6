"""Execution modes: how a cell runs its tasks (one per call, or a whole batch per call).

A suite profile's `execution` (or `metabench run --execution`) requests a mode; "auto"
resolves, per device and method, to the mode that `benchmarks/deploy_batch.py` measured
as faster there. The resolved mode is part of the cell's key and stored with the cell.
"""

from __future__ import annotations

from bench.errors import MetabenchError
from bench.suite import EXECUTIONS

# (device kind, method) -> the measured faster mode; anything not listed runs "loop".
MEASURED_DEFAULTS: dict[tuple[str, str], str] = {}


def resolve_execution(requested: str, device: str, method: str, where: str) -> str:
    """The concrete mode ("loop", "batched" or "graph") of a cell on `device`.

    Raises MetabenchError (naming `where`, the flag or suite key) for an unknown mode or
    "graph" off CUDA.
    """
    if requested not in EXECUTIONS:
        raise MetabenchError(f"{where}: expected one of {EXECUTIONS}, found {requested!r}")
    kind = device.split(":", 1)[0]
    if requested == "graph" and kind != "cuda":
        raise MetabenchError(
            f"{where}: 'graph' (CUDA graph replay) needs --device cuda, found device {device!r}"
        )
    if requested == "auto":
        return MEASURED_DEFAULTS.get((kind, method), "loop")
    return requested
