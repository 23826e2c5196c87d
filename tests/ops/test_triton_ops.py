"""The ``"triton"`` backend against the ``"torch"`` one, run by the Triton interpreter on the CPU.

Inputs are laid out as the model hands them over (``(B, M, N, E)`` memory seen as ``(B, N, T, S, E)``), at
head dims 16 and 24 (the second not a power of two: masked tiles), in fp32 and bf16. bf16 inputs are compared
with the torch backend fed the same values upcast to fp32. The ``triton_interpreter`` fixture
(``conftest.py``) runs the kernels on the CPU. The test extra installs triton: without it these tests fail
(the check that asking for it there is a one-line input error simulates its absence).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sana_wm.ops.gdn as gdn_ops
from sana_wm.errors import InputError
from sana_wm.ops import Dispatch, check_backend, triton_importable
from sana_wm.ops.gdn import GDNState, cam_bidirectional, cam_forward_scan, gdn_bidirectional, gdn_forward_scan
from sana_wm.ops.rope import apply_rope, camera_rope_tables, rope_tables
from sana_wm.ops.short_conv import bidirectional_short_conv
from sana_wm.ops.ucpe import invert_rigid, ray_matrices, ucpe_encode, ucpe_transform

HEIGHT, WIDTH = 3, 4
BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "kernels_gpu.py"


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got.float() - ref.float()).abs().max() / ref.float().abs().max()).item()


def _gdn_inputs(
    seed: int,
    frames: int,
    dim: int,
    dtype: torch.dtype,
    grid: tuple[int, int] = (HEIGHT, WIDTH),
    batch: int = 1,
    heads: int = 2,
) -> dict[str, torch.Tensor]:
    """Model-like ranges and layouts: ReLU'd q/k, k scaled by 1/√(E·S), β a permuted view, decays 0.3–1."""
    gen = torch.Generator().manual_seed(seed)
    tokens = grid[0] * grid[1]
    shape_BMNE = (batch, frames * tokens, heads, dim)

    def frames_view(x_BMNE: torch.Tensor) -> torch.Tensor:
        return x_BMNE.to(dtype).transpose(1, 2).unflatten(2, (frames, tokens))

    q = torch.relu(torch.randn(shape_BMNE, generator=gen))
    k = torch.relu(torch.randn(shape_BMNE, generator=gen)) * (dim * tokens) ** -0.5
    cos, sin = rope_tables(frames, *grid, dim)
    return {
        "q": frames_view(q),
        "k": frames_view(k),
        "v": frames_view(torch.randn(shape_BMNE, generator=gen)),
        "q_rot": frames_view(apply_rope(q.transpose(1, 2), cos, sin).transpose(1, 2)),
        "k_rot": frames_view(apply_rope(k.transpose(1, 2), cos, sin).transpose(1, 2)),
        "beta": torch.rand(batch, frames, tokens, heads, generator=gen).to(dtype).permute(0, 3, 1, 2),
        "decay": 0.3 + 0.7 * torch.rand(batch, frames, heads, generator=gen).transpose(1, 2),
    }


def _cam(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Camera-branch inputs: the rotated q/k stand in for UCPE-encoded ones; β in fp32 as in the model."""
    return {"q": x["q_rot"], "k": x["k_rot"], "v": x["v"], "beta": x["beta"].float(), "decay": x["decay"]}


def _upcast(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.float() for key, value in x.items()}


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-4


@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize(
    ("frames", "dim", "dtype"),
    [
        (1, 16, torch.float32),
        (1, 24, torch.bfloat16),
        (2, 16, torch.bfloat16),
        (2, 24, torch.float32),
        (7, 16, torch.float32),
        (7, 24, torch.bfloat16),
    ],
)
def test_bidirectional_scans_match_torch(frames: int, dim: int, dtype: torch.dtype) -> None:
    x = _gdn_inputs(0, frames, dim, dtype)
    ref = gdn_bidirectional(**_upcast(x), eps=1e-8, backend="torch")
    got = gdn_bidirectional(**x, eps=1e-8, backend="triton")
    assert got.dtype == torch.float32 and got.stride() == x["q"].stride()  # laid out like q
    assert _rel_err(got, ref) < _tolerance(dtype)
    ref_cam = cam_bidirectional(**_upcast(_cam(x)), backend="torch")
    got_cam = cam_bidirectional(**_cam(x), backend="triton")
    assert _rel_err(got_cam, ref_cam) < _tolerance(dtype)


@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_scans_with_initial_state_match_torch_and_chunks_match_one_pass(dtype: torch.dtype) -> None:
    frames, dim, split = 4, 24, 2
    x = _gdn_inputs(1, frames, dim, dtype)
    gen = torch.Generator().manual_seed(2)
    state = GDNState(
        kv=0.1 * torch.randn(1, 2, dim, dim, generator=gen), z=torch.rand(1, 2, dim, generator=gen)
    )
    ref = gdn_forward_scan(**_upcast(x), initial_state=state, backend="torch")
    got = gdn_forward_scan(**x, initial_state=state, backend="triton")
    for name, a, b in zip(("num", "den", "kv", "z"), (*got[:2], *got[2]), (*ref[:2], *ref[2]), strict=True):
        assert _rel_err(a, b) < _tolerance(dtype), name
    cam_ref, cam_state_ref = cam_forward_scan(**_upcast(_cam(x)), initial_state=state.kv, backend="torch")
    cam_got, cam_state = cam_forward_scan(**_cam(x), initial_state=state.kv, backend="triton")
    assert _rel_err(cam_got, cam_ref) < _tolerance(dtype)
    assert _rel_err(cam_state, cam_state_ref) < _tolerance(dtype)

    first = {key: value[:, :, :split] for key, value in x.items()}
    second = {key: value[:, :, split:] for key, value in x.items()}
    num_a, den_a, state_a = gdn_forward_scan(**first, initial_state=state, backend="triton")
    num_b, den_b, state_b = gdn_forward_scan(**second, initial_state=state_a, backend="triton")
    assert torch.allclose(torch.cat([num_a, num_b], dim=2), got[0], rtol=1e-5, atol=1e-6)
    assert torch.allclose(torch.cat([den_a, den_b], dim=2), got[1], rtol=1e-5, atol=1e-6)
    assert torch.allclose(state_b.kv, got[2].kv, atol=1e-6) and torch.allclose(state_b.z, got[2].z, atol=1e-6)
    out_a, cam_state_a = cam_forward_scan(**_cam(first), backend="triton")
    out_b, cam_state_b = cam_forward_scan(**_cam(second), initial_state=cam_state_a, backend="triton")
    one_pass, one_pass_state = cam_forward_scan(**_cam(x), backend="triton")
    assert torch.allclose(torch.cat([out_a, out_b], dim=2), one_pass, rtol=1e-5, atol=1e-6)
    assert torch.allclose(cam_state_b, one_pass_state, atol=1e-6)


@pytest.mark.usefixtures("triton_interpreter")
def test_token_chunks_row_blocks_and_split_read_out_match_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small blocks so that one frame's 36 tokens take several chunks (the last one partial), the 24 state
    rows two row blocks (one partial) next to the ``zᵀ`` block, and the read-out splits a frame over two
    programs; batch 2 (the other tests have one)."""
    kernels = importlib.import_module("sana_wm.ops.gdn.triton_scan")
    for name, value in {
        "MAPS_BLOCK_S": 16,
        "READ_BLOCK_S": 16,
        "SCAN_BLOCK_R": 16,
        "READ_TARGET_PROGRAMS": 12,
    }.items():
        monkeypatch.setattr(kernels, name, value)
    x = _gdn_inputs(5, 3, 24, torch.bfloat16, grid=(4, 9), batch=2, heads=1)
    ref = gdn_bidirectional(**_upcast(x), eps=1e-8, backend="torch")
    assert _rel_err(gdn_bidirectional(**x, eps=1e-8, backend="triton"), ref) < 1e-4
    ref_num, ref_den, ref_state = gdn_forward_scan(**_upcast(x), backend="torch")
    num, den, state = gdn_forward_scan(**x, backend="triton")
    for a, b in zip(
        (num, den, state.kv, state.z), (ref_num, ref_den, ref_state.kv, ref_state.z), strict=True
    ):
        assert _rel_err(a, b) < 1e-4
    ref_cam = cam_bidirectional(**_upcast(_cam(x)), backend="torch")
    assert _rel_err(cam_bidirectional(**_cam(x), backend="triton"), ref_cam) < 1e-4


def _ucpe_inputs(dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ``(B, M, N, E)`` tensor, per-token key matrices ``P⁻¹`` of random cameras, camera RoPE tables."""
    gen = torch.Generator().manual_seed(dim)
    batch, frames = 2, 2
    q, r = torch.linalg.qr(torch.randn(batch * frames, 3, 3, generator=gen))
    pose = torch.eye(4).repeat(batch * frames, 1, 1)
    pose[:, :3, :3] = q * torch.sign(torch.linalg.det(q))[:, None, None]
    pose[:, :3, 3] = torch.randn(batch * frames, 3, generator=gen)
    intrinsics = torch.tensor([3.0, 3.5, WIDTH / 2, HEIGHT / 2]).expand(batch * frames, 4)
    camera = torch.cat([pose.flatten(1), intrinsics], dim=-1).view(batch, frames, 20)
    matrix = invert_rigid(ray_matrices(camera, HEIGHT, WIDTH)).flatten(1, 3)
    cos, sin = camera_rope_tables(*rope_tables(frames, HEIGHT, WIDTH, dim), dim)
    x_BMNE = 2.0 * torch.randn(batch, frames * HEIGHT * WIDTH, 3, dim, generator=gen)
    return x_BMNE, matrix, cos, sin


@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize("dim", [16, 24])
def test_ucpe_encode_matches_torch(dim: int) -> None:
    x_BMNE, matrix, cos, sin = _ucpe_inputs(dim)
    for dtype in (torch.float32, torch.bfloat16):
        x = x_BMNE.to(dtype).transpose(1, 2)  # the model's (B, N, M, E) view
        for conjugate in (False, True):
            for downscale in (False, True):
                kwargs = {"conjugate": conjugate, "downscale": downscale}
                ref = ucpe_encode(x.float(), matrix, cos, sin, **kwargs, backend="torch")
                got = ucpe_encode(x, matrix, cos, sin, **kwargs, backend="triton")
                assert got.stride() == x.stride() and _rel_err(got, ref) < 1e-6, (dtype, kwargs)
                # bf16 output within one bf16 unit in the last place (the interpreter truncates).
                got16 = ucpe_encode(x, matrix, cos, sin, **kwargs, out_dtype=torch.bfloat16, backend="triton")
                assert got16.dtype == torch.bfloat16
                assert ((got16.float() - ref).abs() <= 2**-7 * ref.abs() + 1e-6).all(), (dtype, kwargs)
    transformed = ucpe_transform(x, matrix, cos, sin, backend="triton")
    assert _rel_err(transformed, ucpe_transform(x, matrix, cos, sin, backend="torch")) < 1e-6


def test_benchmark_smoke_run_reports_parity(tmp_path: Path) -> None:
    """``benchmarks/kernels_gpu.py --device cpu --tiny`` (which sets ``TRITON_INTERPRET=1`` itself) in a fresh
    process, as a user runs it: every op within tolerance of torch."""
    import triton  # noqa: F401  (the test extra installs it: a missing triton fails, not skips)

    out = tmp_path / "kernels.json"
    args = ["--device", "cpu", "--tiny", "--frames", "2", "--warmup", "0", "--repeats", "1"]
    args += ["--out", str(out)]
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(BENCHMARK), *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [row["op"] for row in results] == [
        "gdn_bidirectional",
        "cam_bidirectional",
        "ucpe_encode",
        "ucpe_encode_bf16",
        "qk_prep",
        "qk_prep_norope",
        "short_conv",
        "layer_norm_modulate",
        "silu_gate_sum",
        "silu_dwconv_glu",
    ]
    for row in results:
        # qk_prep: the eager bf16 path rounds after each of four steps, the kernel once.
        bf16_bound = 2**-6 if row["op"].startswith("qk_prep") else 2**-7
        assert row["max_rel_err"] < (1e-3 if row["out_dtype"] == "float32" else bf16_bound), row


def test_ops_without_a_kernel_run_the_torch_code() -> None:
    import triton  # noqa: F401  (the test extra installs it: a missing triton fails, not skips)

    cos, sin = rope_tables(2, 2, 3, 16)
    x = torch.randn(1, 2, 12, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(apply_rope(x, cos, sin, backend="triton"), apply_rope(x, cos, sin, backend="torch"))


@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("frames", [2, 7])  # 2: most taps fall outside the clip
def test_short_conv_kernel_matches_torch(dtype: torch.dtype, frames: int) -> None:
    """Strided input as the model hands it over (a chunk of qkv, row stride 3·C), 130 channels and 20
    tokens (masked tiles), K = 4 causal taps → a 7-tap symmetric filter."""
    gen = torch.Generator().manual_seed(frames)
    channels, tokens = 130, 20
    qkv = torch.randn(2, frames, tokens, 3 * channels, generator=gen).to(dtype)
    k = qkv[..., channels : 2 * channels]
    weight = torch.randn(channels, 4, generator=gen).to(dtype)
    got = bidirectional_short_conv(k, weight, backend="triton")
    want = bidirectional_short_conv(k, weight, backend="torch")
    assert got.dtype == dtype and got.is_contiguous()
    if dtype == torch.float32:
        assert (got - want).abs().max() <= 1e-6 * want.abs().max()
    else:  # both sum in fp32 and round once; the interpreter truncates where the torch cast rounds
        assert ((got.float() - want.float()).abs() <= 2**-7 * want.float().abs() + 1e-6).all()


def test_bad_inputs_are_input_errors() -> None:
    import triton  # noqa: F401  (the test extra installs it: a missing triton fails, not skips)

    x = _gdn_inputs(3, 2, 16, torch.float32)
    with pytest.raises(InputError, match=r"^v: expected shape \(1, 2, 2, 12, 16\)"):
        gdn_bidirectional(**(x | {"v": x["v"][:, :, :1]}), eps=1e-8, backend="triton")
    with pytest.raises(InputError, match="^k: requires grad, but the triton backend is forward-only"):
        cam_bidirectional(**(_cam(x) | {"k": x["k_rot"].clone().requires_grad_()}), backend="triton")


def test_missing_triton_is_a_one_line_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_backend`` (the callers' validator) says so, and so does an op's first use of the backend (its
    dispatch table validates once, before importing the kernel module; here a fresh table, as this process
    may have used the triton backend already)."""
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` raise ImportError
    fresh = Dispatch("sana_wm.ops.gdn", reference="reference", torch="torch_scan", triton="triton_scan")
    monkeypatch.setattr(gdn_ops, "_IMPLEMENTATIONS", fresh)
    triton_importable.cache_clear()
    try:
        with pytest.raises(InputError, match=r"^backend: 'triton' needs the triton package, which is not"):
            check_backend("triton")
        with pytest.raises(InputError, match="^backend: 'triton' needs the triton package"):
            cam_bidirectional(**_cam(_gdn_inputs(4, 1, 16, torch.float32)), backend="triton")
        check_backend("torch")
    finally:
        triton_importable.cache_clear()
