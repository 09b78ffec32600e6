"""Conv-4 forward + backward: NCHW vs channels_last layout (fp32), and fp32 vs bf16
autocast (both channels_last, the suites' `precision` setting).

Both layouts compute the same fp32 arithmetic; the script checks the outputs agree and
prints the time of each. The bf16 features are checked to stay within 3% (relative norm)
of fp32. Last line: `ratio=<NCHW time / channels_last time> bf16_ratio=<fp32 time / bf16
time>`.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from bench.methods.backbones import Conv4


def seconds_per_step(net: nn.Module, x: torch.Tensor, repeats: int) -> float:
    for _ in range(2):
        net(x).sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        net(x).sum().backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=360)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    fast = Conv4()
    plain = Conv4()
    plain.load_state_dict(fast.state_dict())
    plain.to(memory_format=torch.contiguous_format)
    plain.forward = lambda x: plain.blocks(x.contiguous()).flatten(1)
    x = torch.rand(args.images, 1, 28, 28)
    half = Conv4(precision="bf16")
    half.load_state_dict(fast.state_dict())
    assert torch.allclose(fast(x), plain(x), atol=1e-4)
    with torch.no_grad():  # bf16 keeps ~3 significant digits: about 1% relative error here
        ref = fast(x)
        assert (half(x) - ref).norm() / ref.norm() < 0.03
    t_plain = seconds_per_step(plain, x, args.repeats)
    t_fast = seconds_per_step(fast, x, args.repeats)
    t_half = seconds_per_step(half, x, args.repeats)
    print(
        f"{args.images} images fwd+bwd: NCHW {t_plain * 1e3:.1f} ms, "
        f"channels_last {t_fast * 1e3:.1f} ms, channels_last bf16 {t_half * 1e3:.1f} ms"
    )
    print(f"ratio={t_plain / t_fast:.2f} bf16_ratio={t_fast / t_half:.2f}")


if __name__ == "__main__":
    main()
