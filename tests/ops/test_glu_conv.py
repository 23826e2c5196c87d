"""SiLU → depthwise 3×3 → GLU of the FFN: the torch path against a written-out loop, the Triton kernel
(under the interpreter on the CPU) against the torch path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sana_wm.ops.glu_conv import silu_dwconv_glu

KERNEL_MODULE = "sana_wm.ops.glu_conv.triton_kernel"


def _inputs(seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(3, 4, 5, 2 * 24, generator=gen)
    weight = torch.randn(2 * 24, 1, 3, 3, generator=gen)
    bias = torch.randn(2 * 24, generator=gen)
    return u.to(dtype), weight.to(dtype), bias.to(dtype)


def _loop(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The definition, one output pixel at a time (zero padding of SiLU(u))."""
    frames, height, width, channels = u.shape
    a = F.silu(u.double())
    d = torch.zeros(frames, height, width, channels, dtype=torch.float64)
    for y in range(height):
        for x in range(width):
            total = bias.double().clone().expand(frames, channels).clone()
            for ky in range(3):
                for kx in range(3):
                    yy, xx = y + ky - 1, x + kx - 1
                    if 0 <= yy < height and 0 <= xx < width:
                        total += a[:, yy, xx] * weight[:, 0, ky, kx].double()
            d[:, y, x] = total
    value, gate = d.chunk(2, dim=-1)
    return value * F.silu(gate)


def test_torch_path_equals_the_written_out_loop() -> None:
    u, weight, bias = _inputs(0)
    got = silu_dwconv_glu(u, weight, bias, backend="torch")
    want = _loop(u, weight, bias)
    assert got.shape == (3, 4, 5, 24)
    assert (got.double() - want).abs().max() < 1e-5 * want.abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_kernel_matches_torch(triton_interpreter: None, dtype: torch.dtype) -> None:
    u, weight, bias = _inputs(1, dtype)
    want = silu_dwconv_glu(u.float(), weight.float(), bias.float(), backend="torch")
    got = silu_dwconv_glu(u, weight, bias, backend="triton")
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-6 if dtype == torch.float32 else 8e-3  # bf16: the output's own rounding
    assert (got.float() - want).abs().max() <= tol * want.abs().max()


def test_ffn_with_triton_backend_matches_torch(triton_interpreter: None) -> None:
    from sana_wm.models.dit import GLUMBConvTemp

    torch.manual_seed(2)
    ffn = GLUMBConvTemp(16, 24, 3)
    x = torch.randn(2, 4 * 3 * 5, 16)
    want = ffn(x, (4, 3, 5), None, "torch")
    got = ffn(x, (4, 3, 5), 3, "triton")
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_overwrite_input_stores_silu_in_u_only_without_autograd(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "triton":
        request.getfixturevalue("triton_interpreter")
    u, weight, bias = _inputs(7)
    want = silu_dwconv_glu(u, weight, bias, backend=backend)
    given = u.clone()
    with torch.no_grad():
        got = silu_dwconv_glu(given, weight, bias, overwrite_input=True, backend=backend)
    assert torch.equal(got, want) and torch.equal(given, F.silu(u))
    if backend == "torch":  # under autograd the input is left alone and gradients flow
        leaf = u.clone().requires_grad_()
        tracked = leaf * 1.0
        silu_dwconv_glu(tracked, weight, bias, overwrite_input=True).sum().backward()
        assert torch.equal(tracked, u) and leaf.grad is not None
