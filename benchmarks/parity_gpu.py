"""Full-size parity and cost of our transformer against diffusers 0.42.1 (bf16), and against our own fp32 run.

Builds the release preset (``sana_wm_1600m_720p``) with the official init plus a small perturbation of every
parameter (so zero-initialised camera paths matter), runs

1. ours in fp32 (the reference: fp32 activations and softmax),
2. ours in bf16,
3. diffusers' ``SanaWMTransformer3DModel`` in bf16 with the identical bf16 weights (fp32 on the CPU, where
   diffusers cannot run its camera geometry in bf16),

on one random clip (per-frame timesteps with frame 0 at 0, padded text, a smooth camera path), and prints the
relative L2 error of each bf16 output against the other and against the fp32 run, the wall time of each
forward (after one warm-up) and the peak CUDA memory of each stage. Weights and inputs are rounded to bf16
values once, so all three runs see identical numbers and the errors measure activation precision only.
Batch 2 by default, retried at batch 1 if it does not fit.

    python benchmarks/parity_gpu.py --frames 321 --out $OUT/parity.json
    python benchmarks/parity_gpu.py --device cpu --tiny          # smoke test
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from sana_wm.models import SanaWMConfig, SanaWMTransformer, preset
from sana_wm.utils.atomic import atomic_output


def diffusers_kwargs(cfg: SanaWMConfig) -> dict[str, Any]:
    """Constructor arguments of diffusers' ``SanaWMTransformer3DModel`` for our config."""
    return {
        "in_channels": cfg.in_channels,
        "num_layers": cfg.depth,
        "hidden_size": cfg.hidden_size,
        "num_attention_heads": cfg.cross_attn_heads,
        "softmax_every_n": cfg.softmax_every_n,
        "linear_head_dim": cfg.head_dim,
        "t_kernel_size": cfg.temporal_kernel,
        "conv_kernel_size": cfg.short_conv_kernel,
        "chunk_plucker_channels": cfg.plucker_channels,
        "chunk_plucker_post_attn_blocks": cfg.plucker_blocks,
        "caption_channels": cfg.caption_channels,
        "mlp_ratio": cfg.mlp_ratio,
    }


def make_inputs(
    cfg: SanaWMConfig, batch: int, frames: int, height: int, width: int, seed: int
) -> dict[str, torch.Tensor]:
    """One clip on the CPU in fp32, every value already representable in bf16."""
    gen = torch.Generator().manual_seed(seed)
    timestep = torch.full((batch, 1, frames), 742.5)
    timestep[:, :, 0] = 0.0
    text_len = 300
    text_mask = torch.ones(batch, text_len)
    text_mask[0, 120:] = 0.0
    # A forward walk with a slow yaw and a small bob, relative to frame 0; intrinsics of a 60° horizontal FoV.
    pose = torch.eye(4).repeat(batch, frames, 1, 1)
    k = torch.arange(frames, dtype=torch.float32)
    yaw = 0.02 * k
    pose[:, :, 0, 0], pose[:, :, 0, 2] = torch.cos(yaw), torch.sin(yaw)
    pose[:, :, 2, 0], pose[:, :, 2, 2] = -torch.sin(yaw), torch.cos(yaw)
    pose[:, :, 0, 3], pose[:, :, 1, 3], pose[:, :, 2, 3] = 0.01 * k, 0.02 * torch.sin(k), 0.2 * k
    focal = 0.5 * width / math.tan(math.radians(30.0))
    intrinsics = torch.tensor([focal, focal, width / 2, height / 2]).expand(batch, frames, 4)
    inputs = {
        "latents": torch.randn(batch, cfg.in_channels, frames, height, width, generator=gen),
        "timestep": timestep,
        "text": torch.randn(batch, text_len, cfg.caption_channels, generator=gen),
        "text_mask": text_mask,
        "camera_conditions": torch.cat([pose.flatten(2), intrinsics], dim=-1),
        "chunk_plucker": torch.randn(batch, cfg.plucker_channels, frames, height, width, generator=gen),
    }
    return {k: v if k == "timestep" else v.bfloat16().float() for k, v in inputs.items()}


def build_ours(cfg: SanaWMConfig, device: torch.device, seed: int) -> SanaWMTransformer:
    """Meta construction, ``to_empty`` on the device, official init, every parameter += N(0, 0.02²), then
    rounded to bf16 values so that the fp32 and bf16 runs share identical weights."""
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    model.to_empty(device=device)
    torch.manual_seed(seed)
    model.init_weights()
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn(param.shape, generator=gen, device=device))
            param.copy_(param.bfloat16().float())
    return model.eval()


def timed(
    fn: Callable[[], torch.Tensor], device: torch.device, repeats: int
) -> tuple[torch.Tensor, float, float | None]:
    """Run ``fn`` once to warm up, then ``repeats`` times; return output, mean seconds, peak GiB (CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        fn()
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(repeats):
            out = fn()
        sync()
    seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return out.float().cpu(), seconds, peak


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run(args: argparse.Namespace, batch: int) -> dict[str, Any]:
    from diffusers import SanaWMTransformer3DModel

    device = torch.device(args.device)
    cfg = preset("tiny" if args.tiny else "sana_wm_1600m_720p")
    latent_frames = (args.frames - 1) // 8 + 1
    cpu_inputs = make_inputs(cfg, batch, latent_frames, args.latent_height, args.latent_width, args.seed)
    to = {k: v.to(device) for k, v in cpu_inputs.items()}
    to_bf16 = {k: v if k == "timestep" else v.bfloat16() for k, v in to.items()}
    report: dict[str, Any] = {"batch": batch, "latent_frames": latent_frames, "time_s": {}, "peak_gib": {}}

    ours = build_ours(cfg, device, args.seed)
    report["parameters"] = sum(p.numel() for p in ours.parameters())
    out32, report["time_s"]["ours_fp32"], report["peak_gib"]["ours_fp32"] = timed(
        functools.partial(ours, **to, backend=args.backend), device, args.repeats
    )
    ours.to(torch.bfloat16)
    free(device)
    out16, report["time_s"]["ours_bf16"], report["peak_gib"]["ours_bf16"] = timed(
        functools.partial(ours, **to_bf16, backend=args.backend), device, args.repeats
    )

    # diffusers computes its camera geometry in the camera tensor's dtype, which must match the model's, and
    # refuses bf16 geometry on the CPU: there (smoke test only) the oracle runs in fp32 on the bf16 weights.
    oracle_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    report["diffusers_dtype"] = str(oracle_dtype).removeprefix("torch.")
    with torch.device(device):
        oracle = SanaWMTransformer3DModel(**diffusers_kwargs(cfg)).to(oracle_dtype).eval()
    oracle.load_state_dict(ours.state_dict(), strict=True)
    del ours
    free(device)
    oracle_in = {k: v if k == "timestep" else v.to(oracle_dtype) for k, v in to.items()}
    oracle_call = functools.partial(
        oracle,
        oracle_in["latents"],
        oracle_in["timestep"],
        oracle_in["text"][:, None],
        encoder_attention_mask=oracle_in["text_mask"],
        camera_conditions=oracle_in["camera_conditions"],
        chunk_plucker=oracle_in["chunk_plucker"],
        return_dict=False,
    )
    out_ref, report["time_s"]["diffusers"], report["peak_gib"]["diffusers"] = timed(
        lambda: oracle_call()[0], device, args.repeats
    )
    report["rel_l2"] = {
        "ours_bf16_vs_diffusers": rel_l2(out16, out_ref),
        "ours_bf16_vs_ours_fp32": rel_l2(out16, out32),
        "diffusers_vs_ours_fp32": rel_l2(out_ref, out32),
    }
    report["max_abs"] = {
        "ours_bf16_vs_diffusers": (out16 - out_ref).abs().max().item(),
        "ours_bf16_vs_ours_fp32": (out16 - out32).abs().max().item(),
    }
    report["output_rms_fp32"] = out32.pow(2).mean().sqrt().item()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=None, help="pixel frames, 8k+1 (321: 41 latent)")
    parser.add_argument("--latent-height", type=int, default=None, help="latent grid height (default 22)")
    parser.add_argument("--latent-width", type=int, default=None, help="latent grid width (default 40)")
    parser.add_argument("--batch", type=int, default=2, help="batch size; 2 falls back to 1 on CUDA OOM")
    parser.add_argument("--backend", default="torch", choices=["torch", "reference"])
    parser.add_argument("--repeats", type=int, default=2, help="timed forwards after one warm-up")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny preset and a small clip (CPU smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    small = (17, 4, 6) if args.tiny else (321, 22, 40)
    args.frames = args.frames or small[0]
    args.latent_height = args.latent_height or small[1]
    args.latent_width = args.latent_width or small[2]

    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    device = torch.device(args.device)
    for batch in [args.batch, 1] if args.batch > 1 else [args.batch]:
        try:
            report = run(args, batch)
            break
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            print(f"batch {batch} does not fit; retrying with batch 1", file=sys.stderr)
        free(device)  # after the except block, so the failed run's frames are gone
    report.update(
        {
            "preset": "tiny" if args.tiny else "sana_wm_1600m_720p",
            "frames": args.frames,
            "latent_grid": [args.latent_height, args.latent_width],
            "backend": args.backend,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
        }
    )
    print(json.dumps(report, indent=2))
    if args.out:
        with atomic_output(args.out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
