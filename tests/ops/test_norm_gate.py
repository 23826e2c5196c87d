"""adaLN modulation and the SiLU output gate: the torch path against the per-token formula, the Triton
kernels (under the interpreter on the CPU) against the torch path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sana_wm.errors import InputError
from sana_wm.ops.norm_gate import layer_norm_modulate, silu_gate_sum

BATCH, FRAMES, PER_FRAME, DIM = 2, 3, 5, 40
EPS = 1e-6


def _modulate_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.randn(BATCH, FRAMES * PER_FRAME, DIM, generator=gen) + 0.7
    shift = 0.5 * torch.randn(BATCH, FRAMES, DIM, generator=gen)
    scale = 0.5 * torch.randn(BATCH, FRAMES, DIM, generator=gen)
    return x, shift, scale


def _per_token(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Token by token in fp64: LN over D, then ``·(1 + scale_t) + shift_t`` of the token's frame."""
    out = torch.empty_like(x)
    for b in range(BATCH):
        for m in range(FRAMES * PER_FRAME):
            t = m // PER_FRAME
            row = x[b, m].double()
            normed = (row - row.mean()) / torch.sqrt(row.var(unbiased=False) + EPS)
            out[b, m] = (normed * (1 + scale[b, t].double()) + shift[b, t].double()).float()
    return out


def test_layer_norm_modulate_torch_matches_the_per_token_formula() -> None:
    x, shift, scale = _modulate_inputs(0)
    got = layer_norm_modulate(x, shift, scale, eps=EPS, out_dtype=torch.float32)
    want = _per_token(x, shift, scale)
    assert (got - want).abs().max() < 2e-6 * want.abs().max()
    bf16 = layer_norm_modulate(x, shift, scale, eps=EPS, out_dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16 and torch.equal(bf16, got.bfloat16())  # rounded once


def test_zero_modulation_is_torch_layer_norm() -> None:
    x, shift, _ = _modulate_inputs(5)
    zeros = torch.zeros_like(shift)
    got = layer_norm_modulate(x, zeros, zeros, eps=EPS, out_dtype=x.dtype)
    assert torch.equal(got, F.layer_norm(x, (DIM,), eps=EPS))


def test_silu_gate_sum_torch_matches_the_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    a, b, g = (torch.randn(2, 7, 9, generator=gen).bfloat16() for _ in range(3))
    got = silu_gate_sum(a, b, g)
    want = (a.double() + b.double()) * g.double() * torch.sigmoid(g.double())
    assert got.dtype == torch.bfloat16
    assert (got.double() - want).abs().max() <= 2.0**-8 * want.abs().max()


def test_bad_shapes_are_input_errors() -> None:
    x, shift, scale = _modulate_inputs(2)
    with pytest.raises(InputError, match="shift_BTD: expected"):
        layer_norm_modulate(x, shift[:, :2, :7], scale, eps=EPS, out_dtype=torch.float32)
    with pytest.raises(InputError, match="scale_BTD: expected"):
        layer_norm_modulate(x, shift, scale[:, :, None], eps=EPS, out_dtype=torch.float32)
    with pytest.raises(InputError, match="b, g: shapes"):
        silu_gate_sum(x, x[:, 1:], x)


@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_triton_layer_norm_modulate_matches_torch(x_dtype: torch.dtype, out_dtype: torch.dtype) -> None:
    x, shift, scale = _modulate_inputs(3)
    x = x.to(x_dtype)
    strided = torch.cat([x, x], dim=-1)[..., :DIM]  # rows of stride 2·D, as a slice hands them over
    want = layer_norm_modulate(x, shift, scale, eps=EPS, out_dtype=torch.float32)
    got = layer_norm_modulate(strided, shift, scale, eps=EPS, out_dtype=out_dtype, backend="triton")
    assert got.dtype == out_dtype and got.is_contiguous()
    # fp32 out agrees to fp32 rounding; bf16 out within one bf16 ulp (the interpreter truncates).
    floor = 2e-6 * want.abs().max()
    ulps = 0.0 if out_dtype == torch.float32 else 2.0**-7
    assert ((got.float() - want).abs() <= ulps * want.abs() + floor).all()


@pytest.mark.usefixtures("triton_interpreter")
def test_triton_silu_gate_sum_matches_torch() -> None:
    gen = torch.Generator().manual_seed(4)
    a, b, g = (3.0 * torch.randn(2, 33, 70, generator=gen) for _ in range(3))
    want = silu_gate_sum(a, b, g)
    got = silu_gate_sum(a, b, g, backend="triton")
    assert (got - want).abs().max() < 1e-5 * want.abs().max()
    a16, b16, g16 = a.bfloat16(), b.bfloat16(), g.bfloat16()
    bf = silu_gate_sum(a16, b16, g16, backend="triton")
    want_bf = silu_gate_sum(a16, b16, g16).float()
    assert bf.dtype == torch.bfloat16
    assert ((bf.float() - want_bf).abs() <= 2.0**-7 * want_bf.abs() + 1e-6).all()


def test_triton_backend_refuses_grad_inputs() -> None:
    import triton  # noqa: F401  (the test extra installs it: a missing triton fails, not skips)

    a = torch.randn(4, requires_grad=True)
    with pytest.raises(InputError, match="a: requires grad"):
        silu_gate_sum(a, a, a, backend="triton")
