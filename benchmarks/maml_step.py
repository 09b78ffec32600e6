"""Time one second-order MAML meta-step: ours (loop and batched) vs a learn2learn-style
reference.

Omniglot-shaped 5-way 1-shot tasks (random 28x28 inputs: the cost does not depend on the
pixels), Conv-4 with batch-statistics BatchNorm (normalization "transductive", the
reference's arithmetic), meta batch 32, one inner step, 15 queries per class. Ours runs
in two execution modes: "loop" (one task per backward, the CPU default) and "batched"
(the meta batch's tasks folded into grouped convolutions, one inner gradient and one
backward per chunk of the memory cap: all 32 tasks on a GPU). The reference is written the
way learn2learn users write MAML: per task a differentiable clone of the module
(`clone_module`: every parameter `.clone()`d into a shallow module copy), the inner step
with `torch.autograd.grad(create_graph=True)` assigned back into the clone
(`update_module`), the query loss; one backward over the summed losses. FLOPs come from
`torch.utils.flop_counter.FlopCounterMode`; the ceiling is a large float32 matmul timed
in the same run on the same device. The script also prints the FLOP rate of a plain
Conv-4 forward + backward on one task's 80 images: the building block of every
meta-step, so in practice the bound on its efficiency.

Last line: ratio=<reference time / loop time> ratio_batched=<reference time / batched
time> efficiency=<loop FLOP/s / matmul FLOP/s>. Targets: ratio >= 1.0 on CPU (the
default path there), ratio_batched >= 1.5 on CUDA.
Usage: python benchmarks/maml_step.py [--device cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.cli_parser import positive_int
from bench.data.episodes import Episode
from bench.devices import torch_device
from bench.errors import MetabenchError
from bench.methods import METHODS, TaskSpec
from bench.methods.batched import stack_episodes

WAY, SHOT, QUERY, META_BATCH, INNER_LR = 5, 1, 15, 32, 0.4


def tasks(device: torch.device, n: int = META_BATCH) -> list[Episode]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(WAY)
    out = []
    for _ in range(n):
        sx = torch.rand(WAY * SHOT, 1, 28, 28, generator=g)
        qx = torch.rand(WAY * QUERY, 1, 28, 28, generator=g)
        out.append(
            Episode(
                sx.to(device),
                labels.repeat_interleave(SHOT).to(device),
                qx.to(device),
                labels.repeat_interleave(QUERY).to(device),
            )
        )
    return out


def ours(method, batch: Episode) -> None:
    """One meta-step's gradient computation with our MAML on a stacked meta batch (its
    execution mode decides: one backward per task, or per chunk of tasks)."""
    method.meta_backward(batch)


def clone_module(module: nn.Module) -> nn.Module:
    """learn2learn-style: a shallow copy of every submodule whose parameters are
    differentiable clones of the originals."""
    clone = copy.copy(module)
    clone._parameters = {
        n: (p.clone() if p is not None else None) for n, p in module._parameters.items()
    }
    clone._buffers = dict(module._buffers)
    clone._modules = {n: clone_module(m) for n, m in module._modules.items()}
    return clone


def update_module(module: nn.Module, updates: dict[str, torch.Tensor]) -> None:
    """Assign p - lr * g (non-leaf tensors) into the clone's parameter slots."""
    for name, new in updates.items():
        *path, leaf = name.split(".")
        owner = module
        for part in path:
            owner = owner._modules[part]
        owner._parameters[leaf] = new


def reference(net: nn.Module, episodes: list[Episode]) -> None:
    total = 0.0
    for ep in episodes:
        learner = clone_module(net)
        named = dict(learner.named_parameters())
        inner = F.cross_entropy(learner(ep.support_x), ep.support_y)
        grads = torch.autograd.grad(inner, list(named.values()), create_graph=True)
        update_module(
            learner, {n: p - INNER_LR * g for (n, p), g in zip(named.items(), grads, strict=True)}
        )
        total = total + F.cross_entropy(learner(ep.query_x), ep.query_y)
    (total / len(episodes)).backward()


def timed(fn, device: torch.device, repeats: int) -> float:
    """Best of `repeats` wall times in seconds (best: the machine is shared and noisy)."""
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_flops_per_s(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    return 2 * n**3 / timed(lambda: a @ b, device, repeats)


def conv4_flops_per_s(net: nn.Module, device: torch.device, repeats: int = 5) -> float:
    """FLOP rate of a plain Conv-4 forward + backward on one task's 80 images (5 support +
    75 queries): what the meta-step's building block attains here, with no MAML around it."""
    x = torch.rand(WAY * (SHOT + QUERY), 1, 28, 28, device=device)
    y = torch.arange(WAY, device=device).repeat_interleave(SHOT + QUERY)

    def step() -> None:
        F.cross_entropy(net(x), y).backward()

    step()
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / timed(step, device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda[:N] (default: cuda if available, else cpu)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        help="timed meta-steps per path; the best counts (default: 3)",
    )
    args = parser.parse_args()
    try:  # bad input: one line and exit 2, before anything is measured
        device = torch_device(args.device)
    except MetabenchError as e:
        parser.error(str(e))
    cls = METHODS.get("maml")
    params = cls.Params(inner_lr=INNER_LR, inner_steps=1)
    methods = {
        mode: cls(
            TaskSpec(
                "classification",
                WAY,
                SHOT,
                QUERY,
                (1, 28, 28),
                normalization="transductive",
                execution=mode,
            ),
            params,
            device,
            seed=0,
        )
        for mode in ("loop", "batched")
    }
    method = methods["loop"]
    net = method.net  # the same network, weights and BatchNorm convention for all
    methods["batched"].net.load_state_dict(net.state_dict())
    episodes = tasks(device)
    batch = stack_episodes(episodes)
    chunks = -(-META_BATCH // methods["batched"].tasks_per_call(WAY * (SHOT + QUERY), "meta"))

    for m in methods.values():  # warm-up (allocator, kernels)
        ours(m, stack_episodes(episodes[:2]))
    reference(net, episodes[:2])
    # Interleaved so that all see the same machine load (best of `repeats` each).
    t = {"loop": float("inf"), "batched": float("inf"), "reference": float("inf")}
    for _ in range(args.repeats):
        for mode, m in methods.items():
            t[mode] = min(t[mode], timed(lambda m=m: ours(m, batch), device, 1))
        t["reference"] = min(t["reference"], timed(lambda: reference(net, episodes), device, 1))
    with FlopCounterMode(display=False) as counter:
        ours(method, batch)
    flops = counter.get_total_flops()
    ceiling = matmul_flops_per_s(device)
    attainable = conv4_flops_per_s(net, device)
    net.zero_grad(set_to_none=True)
    t_ours, t_ref = t["loop"], t["reference"]
    print(f"device={device} threads={torch.get_num_threads()} meta_batch={META_BATCH}")
    print(f"ours loop    {t_ours * 1000:8.1f} ms  {flops / t_ours / 1e9:7.1f} GFLOP/s")
    print(
        f"ours batched {t['batched'] * 1000:8.1f} ms  {flops / t['batched'] / 1e9:7.1f} GFLOP/s"
        f"  ({chunks} chunk(s) of the memory cap)"
    )
    print(f"reference    {t_ref * 1000:8.1f} ms  {flops / t_ref / 1e9:7.1f} GFLOP/s")
    print(f"meta-step {flops / 1e9:.2f} GFLOP; matmul ceiling {ceiling / 1e9:.1f} GFLOP/s")
    print(
        f"plain Conv-4 fwd+bwd, 80 images: {attainable / 1e9:.1f} GFLOP/s "
        f"= {attainable / ceiling:.2f} of the matmul ceiling (what the building block attains)"
    )
    print(
        f"ratio={t_ref / t_ours:.2f} ratio_batched={t_ref / t['batched']:.2f} "
        f"efficiency={flops / t_ours / ceiling:.2f}"
    )


if __name__ == "__main__":
    main()
