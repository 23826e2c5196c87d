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
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch

from sana_wm.bench.build import build_ours, build_peer, free, make_inputs, peer_call, rel_l2
from sana_wm.bench.timing import time_forward
from sana_wm.models import preset
from sana_wm.utils.atomic import atomic_output


def timed(
    fn: Callable[[], torch.Tensor], device: torch.device, repeats: int
) -> tuple[torch.Tensor, float, float | None]:
    """Run ``fn`` once to warm up, then ``repeats`` times; return output, mean seconds, peak GiB (CUDA)."""
    timing = time_forward(fn, device, warmup=1, repeats=repeats)
    return timing.output.float().cpu(), statistics.fmean(timing.seconds), timing.peak_allocated_gib


def run(args: argparse.Namespace, batch: int) -> dict[str, Any]:
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
    oracle = build_peer(cfg, ours.state_dict(), device, oracle_dtype)
    del ours
    free(device)
    oracle_in = {k: v if k == "timestep" else v.to(oracle_dtype) for k, v in to.items()}
    out_ref, report["time_s"]["diffusers"], report["peak_gib"]["diffusers"] = timed(
        peer_call(oracle, oracle_in), device, args.repeats
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
