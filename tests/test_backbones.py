"""The shared backbones: bf16 autocast stays close to fp32 and returns fp32 features; the
first convolution computes the same values whatever strides its weight arrives with."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench.methods.backbones import MLP, ChannelsLastConv2d, Conv4, TextEncoder, backbone_for
from bench.methods.base import TaskSpec
from bench.methods.functional import BatchStats, expanded
from bench.run.grid import Cell
from bench.suite import load_suite


def test_bf16_features_are_fp32_and_close_to_fp32() -> None:
    torch.manual_seed(0)
    fp32 = Conv4()
    bf16 = Conv4(precision="bf16")
    bf16.load_state_dict(fp32.state_dict())
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        a, b = fp32(x), bf16(x)
    assert b.dtype == torch.float32
    assert (a - b).norm() / a.norm() < 0.03  # bf16: ~3 significant digits, ~1% here
    assert not torch.equal(a, b)  # autocast really ran in bf16


def test_bf16_gradients_reach_fp32_parameters() -> None:
    net = Conv4(precision="bf16")
    net(torch.randn(4, 1, 28, 28)).sum().backward()
    for p in net.parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_backbone_for_passes_the_suite_precision(precision: str) -> None:
    for shape, backbone in [((1, 28, 28), "auto"), ((2,), "auto"), ((12,), "text")]:
        task = TaskSpec("classification", 5, 1, 15, shape, backbone=backbone, precision=precision)
        assert backbone_for(task).precision == precision


def test_one_channel_weight_with_nchw_strides_gives_the_same_convolution() -> None:
    torch.manual_seed(0)
    conv = ChannelsLastConv2d(1, 8, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(3, 1, 10, 10)
    # A [8, 1, 3, 3] weight whose strides read as NCHW, as a functional update can leave it.
    w = conv.weight.detach()
    nchw = torch.empty_strided(w.shape, (9, 9, 3, 1)).copy_(w).requires_grad_(True)
    out = functional_call(conv, {"weight": nchw, "bias": conv.bias}, (x,))
    expected = F.conv2d(x, nchw, conv.bias, padding=1)
    assert torch.allclose(out, expected, atol=1e-6)
    (grad,) = torch.autograd.grad(out.square().sum(), nchw)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), nchw)
    assert torch.allclose(grad, expected_grad, atol=1e-5)


def test_precision_is_part_of_the_cell_key() -> None:
    suite = load_suite("omniglot-5w1s", "smoke")
    fp32 = Cell(suite, "protonet", 0, "cpu")
    bf16 = Cell(dataclasses.replace(suite, precision="bf16"), "protonet", 0, "cpu")
    assert fp32.key != bf16.key


@pytest.mark.parametrize(
    "net, x",
    [
        (Conv4(hidden=4), torch.rand(6, 1, 28, 28)),
        (MLP(3), torch.rand(6, 3)),
        (TextEncoder(), torch.randint(0, 2048, (6, 10)).float()),
    ],
    ids=["conv4", "mlp", "text"],
)
def test_folded_forward_of_one_task_is_the_modules_forward(net, x) -> None:
    """The two forwards of a backbone compute one function: the task-folded one with T = 1
    and plain batch statistics equals the module in training mode."""
    net = net.double().train()
    x = x.double()
    params = expanded(dict(net.named_parameters()), 1)
    folded = net.folded(params, x[None], BatchStats())[0]
    assert torch.allclose(folded, net(x), rtol=1e-12, atol=1e-12)


def test_conv4_has_no_parameter_that_batchnorm_cancels() -> None:
    """Conv-4's convolutions have no bias: a per-channel constant before BatchNorm changes
    no output, so its gradient would be round-off, which Adam turns into full steps. Every
    parameter gets a real gradient, and adding biases changes nothing (float64)."""
    torch.manual_seed(0)
    net = Conv4(hidden=4).double().train()
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    out = net(x)
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    total = torch.cat([g.reshape(-1) for g in grads]).norm()
    for (name, _), g in zip(net.named_parameters(), grads, strict=True):
        assert g.norm() > 1e-6 * total, f"{name}: gradient {float(g.norm()):.3g}"
    assert not any(n.endswith(".0.bias") for n, _ in net.named_parameters())
    with torch.no_grad():
        for block in net.blocks:
            block[0].bias = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
        assert torch.allclose(net(x), out, rtol=1e-12, atol=1e-12)
