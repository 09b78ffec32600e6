"""Execution modes: how a cell runs its tasks (one per call, or a whole batch per call).

- "loop": one task per call (and per backward in meta-training);
- "batched": a chunk of tasks per call, folded into one set of kernels (grouped
  convolutions, batched matrix products), the meta batch included;
- "graph": batched, each call replayed from a CUDA graph (CUDA only).

All three give the same results (float64: tests/test_batched_equivalence.py); they differ
in speed and energy. A suite profile's `execution` (or `metabench run --execution`)
requests a mode; "auto" resolves, per device kind, backbone and method, to the mode that
`benchmarks/deploy_batch.py` measured as faster there. The resolved mode is part of the
cell's key and stored with the cell.
"""

from __future__ import annotations

from bench.errors import MetabenchError
from bench.suite import EXECUTIONS

# dataset -> the backbone its tasks run on (bench.methods.backbones.backbone_for)
BACKBONES = {
    "omniglot": "conv4",
    "sinusoid": "mlp",
    "pendulum": "mlp",
    "cartpole": "mlp",
    "banking77": "text",
    "clinc150": "text",
}

# CPU: the methods whose batch / stream tasks per second measured at least 1.2 (a margin
# over the machine's noise; the loop is the simpler path with bounded memory) in one run
# of `python benchmarks/deploy_batch.py` (2 threads, the harness's default) on the 2-core
# development machine while it was quiet, 2026-12-01, T = 32, standard shapes (numbers:
# docs/protocol.md "Execution"; a second quiet run, docs/results/cpu-2core-benchmarks,
# gave the same choices with ratios about 20% apart, e.g. scratch 1.85x, transfer 3.28x).
# Conv-4 with per-task weights mostly loses to the loop
# (grouped convolutions: MAML family and the learned optimiser 0.50-0.99x) and so do
# ProtoNets (0.37x: 2,400 images in one pass); scratch (1.58x) and transfer (2.16x) win.
# The MLP gains 4-26x; text 1.9-14x, except the learned optimiser (0.47x: its LSTM over
# T x 67k coordinates).
CPU_BATCHED = {
    "conv4": ("scratch", "transfer"),
    "mlp": ("scratch", "maml", "fomaml", "reptile", "anil", "metasgd", "learned_opt", "transfer"),
    "text": ("protonet", "scratch", "maml", "fomaml", "reptile", "anil", "metasgd", "transfer"),
}
CPU_DEFAULTS: dict[tuple[str, str], str] = {
    (bb, m): "batched" for bb, methods in CPU_BATCHED.items() for m in methods
}
# CUDA: batched for every method (kernel launches, not arithmetic, set the time of these
# networks), pending the device check of scripts/gpu_check.sh (docs/gpu-validation.md).
CUDA_DEFAULT = "batched"


def resolve_execution(
    requested: str, device: str, method: str, where: str, dataset: str = ""
) -> str:
    """The concrete mode ("loop", "batched" or "graph") of a cell of `method` on `dataset`
    and `device`.

    Raises MetabenchError (naming `where`, the flag or suite key) for an unknown mode or
    "graph" off CUDA.
    """
    if requested not in EXECUTIONS:
        raise MetabenchError(
            f"{where}: expected one of {', '.join(EXECUTIONS)}, found {requested!r}"
        )
    kind = device.split(":", 1)[0]
    if requested == "graph" and kind != "cuda":
        raise MetabenchError(
            f"{where}: 'graph' (CUDA graph replay) needs --device cuda, found device {device!r}"
        )
    if requested != "auto":
        return requested
    if kind == "cuda":
        return CUDA_DEFAULT
    return CPU_DEFAULTS.get((BACKBONES.get(dataset, ""), method), "loop")
