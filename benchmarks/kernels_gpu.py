"""Cost and parity of the ``"triton"`` ops against the ``"torch"`` ones, op by op, at the model's full sizes.

For each latent frame count (``--frames``, default 41 and 121) and each op — ``gdn_bidirectional``,
``cam_bidirectional``, ``ucpe_encode`` (with the RMS downscale; fp32 and bf16 output), ``qk_prep`` (the keys'
RMSNorm → ReLU → κ → RoPE; ``qk_prep_norope`` without the rotation, as the camera branch), the keys' short
convolution over frames (``short_conv``), the block's adaLN modulation (``layer_norm_modulate``: fp32 residual
stream in, bf16 out), the output gate (``silu_gate_sum``) and the FFN's SiLU/depthwise/GLU on one 16-frame
chunk (``silu_dwconv_glu``) — runs both backends
on the same inputs and records the max relative error ``max|a − b| / max|b|`` (``b``: torch; the larger of the
two for ops with two outputs), the median milliseconds of ``--repeats`` runs after ``--warmup`` runs (CUDA
events) and the peak memory the op allocates above what was allocated before it (MiB).

Inputs follow the model (``sana_wm/models/attention.py``): B = 2 (CFG batch), N = 20 heads, E = V = 112,
a 22 × 40 latent grid (S = 880); q, k, v (and the RoPE-rotated q, k) in bf16, laid out as the model hands them
over (``(B, M, N, E)`` memory seen as ``(B, N, T, S, E)``); main-branch β bf16, camera β and decays fp32; the
UCPE input a bf16 ``(B, M, N, E)`` view with per-ray matrices of a smooth camera path; the ``qk_prep`` input a
bf16 ``(B, M, D)`` chunk of a ``(B, M, 3·D)`` projection (D = N·E) with a bf16 weight near 1.

    python benchmarks/kernels_gpu.py --out $OUT/kernels.json
    python benchmarks/kernels_gpu.py --device cpu --tiny --frames 2 --warmup 0 --repeats 1   # smoke test

On ``--device cpu`` the script sets ``TRITON_INTERPRET=1`` itself (the Triton interpreter; slow).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sana_wm.utils.atomic import atomic_output


@dataclass(frozen=True, kw_only=True)
class Sizes:
    batch: int
    heads: int
    head_dim: int
    height: int
    width: int


FULL = Sizes(batch=2, heads=20, head_dim=112, height=22, width=40)
TINY = Sizes(batch=1, heads=2, head_dim=24, height=3, width=4)


def _model_view(x_BMNE: torch.Tensor, frames: int) -> torch.Tensor:
    """``(B, M, N, E)`` memory as the ``(B, N, T, S, E)`` view the attention blocks pass to the scans."""
    return x_BMNE.transpose(1, 2).unflatten(2, (frames, -1))


def gdn_inputs(sizes: Sizes, frames: int, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """Main-branch inputs with model-like ranges (ReLU'd q/k, k scaled by 1/√(E·S), β in (0, 1))."""
    from sana_wm.ops.rope import apply_rope, rope_tables

    gen = torch.Generator(device=device).manual_seed(seed)
    b, n, e = sizes.batch, sizes.heads, sizes.head_dim
    tokens = sizes.height * sizes.width
    shape = (b, frames * tokens, n, e)

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(size, generator=gen, device=device)

    q_BMNE = torch.relu(randn(*shape)).bfloat16()
    k_BMNE = (torch.relu(randn(*shape)) * (e * tokens) ** -0.5).bfloat16()
    v_BMNE = randn(*shape).bfloat16()
    cos, sin = rope_tables(frames, sizes.height, sizes.width, e, device=device)
    q_rot = apply_rope(q_BMNE.transpose(1, 2), cos, sin).unflatten(2, (frames, tokens))
    k_rot = apply_rope(k_BMNE.transpose(1, 2), cos, sin).unflatten(2, (frames, tokens))
    beta_BTSN = torch.sigmoid(randn(b, frames, tokens, n)).bfloat16()
    decay_BTN = 0.3 + 0.7 * torch.rand(b, frames, n, generator=gen, device=device)
    return {
        "q": _model_view(q_BMNE, frames),
        "k": _model_view(k_BMNE, frames),
        "v": _model_view(v_BMNE, frames),
        "q_rot": q_rot,
        "k_rot": k_rot,
        "beta": beta_BTSN.permute(0, 3, 1, 2),
        "decay": decay_BTN.transpose(1, 2),
    }


def camera_path(sizes: Sizes, frames: int, device: torch.device) -> torch.Tensor:
    """Camera conditions ``(B, T, 20)``: a forward walk with a slow yaw, 60° horizontal field of view."""
    pose = torch.eye(4, device=device).repeat(sizes.batch, frames, 1, 1)
    step = torch.arange(frames, dtype=torch.float32, device=device)
    yaw = 0.02 * step
    pose[:, :, 0, 0], pose[:, :, 0, 2] = torch.cos(yaw), torch.sin(yaw)
    pose[:, :, 2, 0], pose[:, :, 2, 2] = -torch.sin(yaw), torch.cos(yaw)
    pose[:, :, 0, 3], pose[:, :, 2, 3] = 0.01 * step, 0.2 * step
    focal = 0.5 * sizes.width / math.tan(math.radians(30.0))
    intrinsics = torch.tensor([focal, focal, sizes.width / 2, sizes.height / 2], device=device)
    return torch.cat([pose.flatten(2), intrinsics.expand(sizes.batch, frames, 4)], dim=-1)


def ucpe_inputs(sizes: Sizes, frames: int, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """A bf16 ``(B, N, M, E)`` view of ``(B, M, N, E)`` memory, key matrices ``P⁻¹``, camera RoPE tables."""
    from sana_wm.ops.rope import camera_rope_tables, rope_tables
    from sana_wm.ops.ucpe import invert_rigid, ray_matrices

    gen = torch.Generator(device=device).manual_seed(seed)
    tokens = frames * sizes.height * sizes.width
    x_BMNE = torch.randn(sizes.batch, tokens, sizes.heads, sizes.head_dim, generator=gen, device=device)
    matrix = invert_rigid(ray_matrices(camera_path(sizes, frames, device), sizes.height, sizes.width))
    cos, sin = rope_tables(frames, sizes.height, sizes.width, sizes.head_dim, device=device)
    cam_cos, cam_sin = camera_rope_tables(cos, sin, sizes.head_dim)
    return {
        "x_BNME": x_BMNE.bfloat16().transpose(1, 2),
        "matrix_BM44": matrix.flatten(1, 3).contiguous(),
        "cos_MQ": cam_cos.contiguous(),
        "sin_MQ": cam_sin.contiguous(),
    }


def qk_prep_inputs(sizes: Sizes, frames: int, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """The keys as the attention block hands them over: a bf16 chunk of a ``qkv`` projection, RoPE tables."""
    from sana_wm.ops.rope import rope_tables

    gen = torch.Generator(device=device).manual_seed(seed)
    tokens = frames * sizes.height * sizes.width
    dim = sizes.heads * sizes.head_dim
    qkv = torch.randn(sizes.batch, tokens, 3 * dim, generator=gen, device=device, dtype=torch.bfloat16)
    weight = 1.0 + 0.1 * torch.randn(dim, generator=gen, device=device)
    cos, sin = rope_tables(frames, sizes.height, sizes.width, sizes.head_dim, device=device)
    return {
        "x_BMD": qkv.chunk(3, dim=-1)[1],
        "weight_D": weight.bfloat16(),
        "rope_cos_MP": cos,
        "rope_sin_MP": sin,
    }


def block_inputs(sizes: Sizes, frames: int, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """Inputs of the block-level elementwise ops: the fp32 residual stream with per-frame adaLN tables,
    three bf16 ``(B, M, D)`` tensors for the gate, the keys for the short conv (a chunk of a ``qkv``
    projection, with fla's 4 causal taps), and one 16-frame chunk of the FFN's inverted-conv output
    (``G = 6·D``) with its depthwise weights."""
    gen = torch.Generator(device=device).manual_seed(seed)
    tokens_per_frame = sizes.height * sizes.width
    dim = sizes.heads * sizes.head_dim

    def randn(*size: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        return torch.randn(*size, generator=gen, device=device, dtype=dtype)

    tokens = frames * tokens_per_frame
    chunk = min(frames, 16)
    qkv = randn(sizes.batch, frames, tokens_per_frame, 3 * dim)
    return {
        "x": randn(sizes.batch, tokens, dim, dtype=torch.float32),
        "shift": 0.1 * randn(sizes.batch, frames, dim, dtype=torch.float32),
        "scale": 0.1 * randn(sizes.batch, frames, dim, dtype=torch.float32),
        "a": randn(sizes.batch, tokens, dim),
        "b": randn(sizes.batch, tokens, dim),
        "g": randn(sizes.batch, tokens, dim),
        "k": qkv[..., dim : 2 * dim],
        "conv_weight": 0.5 * randn(dim, 4),
        "u": randn(sizes.batch * chunk, sizes.height, sizes.width, 6 * dim),
        "dw_weight": 0.3 * randn(6 * dim, 1, 3, 3),
        "dw_bias": 0.1 * randn(6 * dim),
    }


Output = torch.Tensor | tuple[torch.Tensor, ...]


def measure(
    fn: Callable[[], Output], device: torch.device, warmup: int, repeats: int
) -> tuple[Output, float, float | None]:
    """Output, median milliseconds and peak MiB allocated above the starting point (CUDA only)."""
    cuda = device.type == "cuda"
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start_bytes = torch.cuda.memory_allocated(device) if cuda else 0
        times, out = [], None
        for _ in range(repeats):
            out = None  # free the previous output before the next run
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                began = time.perf_counter()
                out = fn()
                times.append(1e3 * (time.perf_counter() - began))
    peak = (torch.cuda.max_memory_allocated(device) - start_bytes) / 2**20 if cuda else None
    assert out is not None
    return out, statistics.median(times), peak


def max_rel_err(a: Output, b: Output) -> float:
    """``max|a − b| / max|b|`` in fp32 (for tuples of outputs: the largest over them)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return max(max_rel_err(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None)
    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def op_calls(name: str, inputs: dict[str, torch.Tensor], sizes: Sizes) -> dict[str, Callable[[], Output]]:
    """The op ``name`` on ``inputs``, per backend."""
    from sana_wm.ops.gdn import cam_bidirectional, gdn_bidirectional
    from sana_wm.ops.glu_conv import silu_dwconv_glu
    from sana_wm.ops.norm_gate import layer_norm_modulate, silu_gate_sum
    from sana_wm.ops.qk_prep import qk_prep
    from sana_wm.ops.short_conv import bidirectional_short_conv
    from sana_wm.ops.ucpe import ucpe_encode

    def call(backend: str) -> Callable[[], Output]:
        x = inputs
        if name == "short_conv":
            return lambda: bidirectional_short_conv(x["k"], x["conv_weight"], backend=backend)
        if name == "layer_norm_modulate":
            return lambda: layer_norm_modulate(
                x["x"], x["shift"], x["scale"], eps=1e-6, out_dtype=torch.bfloat16, backend=backend
            )
        if name == "silu_gate_sum":
            return lambda: silu_gate_sum(x["a"], x["b"], x["g"], backend=backend)
        if name == "silu_dwconv_glu":
            return lambda: silu_dwconv_glu(x["u"], x["dw_weight"], x["dw_bias"], backend=backend)
        if name == "gdn_bidirectional":
            return lambda: gdn_bidirectional(**inputs, eps=1e-8, backend=backend)
        if name == "cam_bidirectional":
            cam = {key: inputs[key] for key in ("q", "k", "v", "beta", "decay")}
            cam["beta"] = inputs["beta"].float()
            return lambda: cam_bidirectional(**cam, backend=backend)
        if name.startswith("qk_prep"):
            kappa = (sizes.head_dim * sizes.height * sizes.width) ** -0.5
            keys = ("x_BMD", "weight_D") if name.endswith("norope") else tuple(inputs)
            args = {key: inputs[key] for key in keys}
            return lambda: qk_prep(
                **args, eps=1e-5, relu=True, scale=kappa, heads=sizes.heads, backend=backend
            )
        out_dtype = torch.bfloat16 if name.endswith("bf16") else torch.float32
        return lambda: ucpe_encode(**inputs, downscale=True, out_dtype=out_dtype, backend=backend)

    return {backend: call(backend) for backend in ("torch", "triton")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    sizes = TINY if args.tiny else FULL
    import triton

    from sana_wm.ops.gdn import triton_scan
    from sana_wm.ops.qk_prep import triton_kernel as triton_qk_prep
    from sana_wm.ops.ucpe import triton_kernel as triton_ucpe

    launch = ("MAPS_BLOCK_S", "MAPS_WARPS", "MAPS_STAGES", "SCAN_BLOCK_R", "SCAN_WARPS", "SCAN_STAGES")
    launch += ("READ_BLOCK_S", "READ_WARPS", "READ_STAGES", "READ_STATE_PARTS_BF16")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (TRITON_INTERPRET=1)",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "launch": {name: getattr(triton_scan, name) for name in launch}
        | {"UCPE_BLOCK_M": triton_ucpe.BLOCK_M, "UCPE_WARPS": triton_ucpe.WARPS}
        | {"QK_PREP_WARPS": triton_qk_prep.WARPS},
        "sizes": vars(sizes) | {"tokens_per_frame": sizes.height * sizes.width},
        "warmup": args.warmup,
        "repeats": args.repeats,
        "results": [],
    }
    ops = ("gdn_bidirectional", "cam_bidirectional", "ucpe_encode", "ucpe_encode_bf16")
    ops += ("qk_prep", "qk_prep_norope")
    block_ops = ("short_conv", "layer_norm_modulate", "silu_gate_sum", "silu_dwconv_glu")
    for frames in args.frames:
        gdn = gdn_inputs(sizes, frames, device, args.seed)
        ucpe = ucpe_inputs(sizes, frames, device, args.seed + 1)
        qk = qk_prep_inputs(sizes, frames, device, args.seed + 2)
        for name in ops + block_ops:
            if name == block_ops[0]:  # the GDN inputs are done with: make room for these
                del gdn, ucpe, qk
                gdn = ucpe = qk = block_inputs(sizes, frames, device, args.seed + 3)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            inputs = ucpe if name.startswith("ucpe") else qk if name.startswith("qk_prep") else gdn
            calls = op_calls(name, inputs, sizes)
            row: dict[str, Any] = {"op": name, "frames": frames}
            reference, row["torch_ms"], row["torch_peak_mib"] = measure(
                calls["torch"], device, args.warmup, args.repeats
            )
            got, row["triton_ms"], row["triton_peak_mib"] = measure(
                calls["triton"], device, args.warmup, args.repeats
            )
            first = got[0] if isinstance(got, tuple) else got
            row["out_dtype"] = str(first.dtype).removeprefix("torch.")
            row["max_rel_err"] = max_rel_err(got, reference)
            row["speedup"] = row["torch_ms"] / row["triton_ms"]
            del reference, got
            report["results"].append(row)
            peaks = f"{row['torch_peak_mib']} / {row['triton_peak_mib']} MiB" if device.type == "cuda" else ""
            print(
                f"T={frames:4d} {name:18s} err {row['max_rel_err']:.2e}  torch {row['torch_ms']:9.2f} ms  "
                f"triton {row['triton_ms']:9.2f} ms  x{row['speedup']:.1f}  {peaks}",
                flush=True,
            )
        del gdn, ucpe, qk
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--frames", type=int, nargs="+", default=[41, 121], help="latent frame counts T")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are first imported (lazily, by the ops)
    report = run(args)
    if args.out:
        with atomic_output(args.out) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
