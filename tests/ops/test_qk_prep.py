"""Fused q/k preparation: the torch path against the model's own modules, the Triton kernel (under the
interpreter on the CPU) against the torch path and against the fp32 result rounded once."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sana_wm.errors import InputError
from sana_wm.models.attention import QK_NORM_EPS, RMSNorm
from sana_wm.ops.qk_prep import qk_prep
from sana_wm.ops.rope import apply_rope, rope_tables

FRAMES, HEIGHT, WIDTH = 2, 3, 4
TOKENS = FRAMES * HEIGHT * WIDTH
BF16_HALF_ULP = 2.0**-8  # relative: bf16 keeps 8 significant bits


def _inputs(
    seed: int, heads: int, head_dim: int, dtype: torch.dtype, batch: int = 2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` as the model hands it over (a chunk of a ``qkv`` projection: row stride 3·D), a weight near 1
    and the RoPE tables of a ``FRAMES × HEIGHT × WIDTH`` grid."""
    gen = torch.Generator().manual_seed(seed)
    dim = heads * head_dim
    qkv = 3.0 * torch.randn(batch, TOKENS, 3 * dim, generator=gen) + 0.5
    weight = 1.0 + 0.3 * torch.randn(dim, generator=gen)
    cos, sin = rope_tables(FRAMES, HEIGHT, WIDTH, head_dim)
    return qkv.to(dtype).chunk(3, dim=-1)[1], weight.to(dtype), cos, sin


def _model_steps(
    x: torch.Tensor,
    weight: torch.Tensor,
    heads: int,
    relu: bool,
    scale: float,
    cos: torch.Tensor,
    sin: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``GDNCameraAttention.forward`` does to ``k`` today, in its ``(B, N, M, E)`` layout."""
    norm = RMSNorm(x.shape[-1], QK_NORM_EPS).to(weight.dtype)
    with torch.no_grad():
        norm.weight.copy_(weight)
        y = norm(x)
        y = F.relu(y) * scale if relu else y * scale
        y_BNME = y.unflatten(-1, (heads, -1)).transpose(1, 2)
        return y_BNME, apply_rope(y_BNME, cos, sin)


def _to_BNME(x_BMD: torch.Tensor, heads: int) -> torch.Tensor:
    return x_BMD.unflatten(-1, (heads, -1)).transpose(1, 2)


@pytest.mark.parametrize("relu", [True, False])
def test_torch_path_matches_the_model_modules_fp32(relu: bool) -> None:
    x, weight, cos, sin = _inputs(0, heads=2, head_dim=24, dtype=torch.float32)
    scale = 0.0123
    want_y, want_rot = _model_steps(x, weight, 2, relu, scale, cos, sin)
    y, rot = qk_prep(
        x, weight, eps=QK_NORM_EPS, relu=relu, scale=scale, rope_cos_MP=cos, rope_sin_MP=sin, heads=2
    )
    assert y.dtype == rot.dtype == torch.float32
    assert (_to_BNME(y, 2) - want_y).abs().max() <= 1e-6 * want_y.abs().max()
    assert (_to_BNME(rot, 2) - want_rot).abs().max() <= 1e-6 * want_rot.abs().max()
    ref_y, ref_rot = qk_prep(
        x, weight, eps=QK_NORM_EPS, relu=relu, scale=scale, rope_cos_MP=cos, rope_sin_MP=sin, heads=2,
        backend="reference",
    )  # fmt: skip
    assert (ref_rot - rot).abs().max() <= 1e-6 * rot.abs().max() and torch.equal(ref_y, y)


def test_torch_path_equals_the_model_modules_bf16() -> None:
    x, weight, cos, sin = _inputs(1, heads=3, head_dim=16, dtype=torch.bfloat16)
    scale = 16**-0.5 * (HEIGHT * WIDTH) ** -0.5  # κ of the keys
    want_y, want_rot = _model_steps(x, weight, 3, True, scale, cos, sin)
    y, rot = qk_prep(
        x, weight, eps=QK_NORM_EPS, relu=True, scale=scale, rope_cos_MP=cos, rope_sin_MP=sin, heads=3
    )
    assert y.dtype == rot.dtype == torch.bfloat16
    assert torch.equal(_to_BNME(y, 3), want_y)
    assert torch.equal(_to_BNME(rot, 3), want_rot)
    # Without RoPE and scale: the query path.
    q, none = qk_prep(x, weight, eps=QK_NORM_EPS, relu=True, scale=1.0, heads=3)
    assert none is None and torch.equal(_to_BNME(q, 3), _model_steps(x, weight, 3, True, 1.0, cos, sin)[0])


CASES = [  # (heads, head_dim, relu, rope)
    (2, 24, True, True),
    (3, 16, True, True),
    (2, 24, False, True),
    (3, 16, False, False),
    (2, 24, True, False),
]


@pytest.mark.parametrize(("heads", "head_dim", "relu", "rope"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_kernel_matches_torch(
    triton_interpreter: None, heads: int, head_dim: int, relu: bool, rope: bool, dtype: torch.dtype
) -> None:
    x, weight, cos, sin = _inputs(2, heads, head_dim, dtype)
    tables = {"rope_cos_MP": cos, "rope_sin_MP": sin} if rope else {}
    args = {"eps": QK_NORM_EPS, "relu": relu, "scale": 0.37, "heads": heads} | tables
    got_y, got_rot = qk_prep(x, weight, **args, backend="triton")
    want_y, want_rot = qk_prep(x, weight, **args, backend="torch")
    assert got_y.dtype == dtype and (got_rot is None) == (not rope)
    exact_y, exact_rot = qk_prep(x.float(), weight.float(), **args, backend="torch")  # fp32, no rounding
    if dtype == torch.float32:
        assert (got_y - want_y).abs().max() <= 1e-6 * want_y.abs().max()
        if rope:
            assert (got_rot - want_rot).abs().max() <= 1e-6 * want_rot.abs().max()
        return
    # The pair magnitude bounds the rounding error of a rotated channel (rotations keep pair norms).
    pair_norm = exact_y.unflatten(-1, (-1, 2)).norm(dim=-1, keepdim=True).expand(-1, -1, -1, 2).flatten(-2)
    checks = [(got_y, want_y, exact_y, exact_y.abs())]
    if rope:
        checks.append((got_rot, want_rot, exact_rot, pair_norm))
    for got, want, exact, magnitude in checks:
        slack = 1e-6 * exact.abs().max()  # fp32 rsqrt, sum order and rotation
        # One rounding of the fp32 value: half an ulp on a GPU (round to nearest even); the interpreter
        # truncates fp32 → bf16 stores, so up to one ulp here.
        assert ((got.float() - exact).abs() <= 2 * BF16_HALF_ULP * exact.abs() + slack).all()
        # The eager bf16 path rounds after the norm, the weight, the scale and the rotation: a few ulps apart.
        assert ((got.float() - want.float()).abs() <= 6 * BF16_HALF_ULP * magnitude + slack).all()
    if relu:
        assert (got_y >= 0).all()


def test_triton_rejects_inputs_that_require_grad(triton_interpreter: None) -> None:
    x, weight, cos, sin = _inputs(3, heads=2, head_dim=24, dtype=torch.float32)
    with pytest.raises(InputError, match="x_BMD: requires grad"):
        qk_prep(x.requires_grad_(), weight, eps=1e-5, relu=True, scale=1.0, heads=2, backend="triton")
    with pytest.raises(InputError, match="weight_D: requires grad"):
        qk_prep(
            x.detach(), torch.nn.Parameter(weight), eps=1e-5, relu=True, scale=1.0, heads=2, backend="triton"
        )
    with torch.no_grad():  # inference with the model's parameters is fine
        y, _ = qk_prep(
            x, torch.nn.Parameter(weight), eps=1e-5, relu=False, scale=1.0, heads=2, backend="triton"
        )
    assert (y - qk_prep(x.detach(), weight, eps=1e-5, relu=False, scale=1.0, heads=2)[0]).abs().max() < 1e-5


def test_bad_shapes_are_input_errors() -> None:
    x, weight, cos, sin = _inputs(4, heads=2, head_dim=24, dtype=torch.float32)
    with pytest.raises(InputError, match="heads"):
        qk_prep(x, weight, eps=1e-5, relu=True, scale=1.0, heads=5)
    with pytest.raises(InputError, match="weight_D"):
        qk_prep(x, weight[:-1], eps=1e-5, relu=True, scale=1.0, heads=2)
    with pytest.raises(InputError, match="rope_cos_MP"):
        qk_prep(x, weight, eps=1e-5, relu=True, scale=1.0, rope_cos_MP=cos[:, :-1], rope_sin_MP=sin, heads=2)
    with pytest.raises(InputError, match="both tables"):
        qk_prep(x, weight, eps=1e-5, relu=True, scale=1.0, rope_cos_MP=cos, heads=2)
