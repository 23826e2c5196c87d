"""Where one GDN block and one softmax block of the release spend their time (torch.profiler, one forward).

Builds block 0 (frame-wise GDN) and block 3 (softmax) of ``sana_wm_1600m_720p`` in bf16 with random weights,
feeds them one random clip (CFG batch 2, 704×1280 → 22×40 latent grid) and prints, per block, the wall time of
one forward (after a warm-up) and the CUDA kernels that took the most time. Also times the softmax attention
alone with each SDPA backend at the block's shapes.

    python benchmarks/profile_blocks.py --frames 961 --out $OUT/profile.txt
    python benchmarks/profile_blocks.py --device cpu --tiny            # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import time

import torch
import torch.nn.functional as F

from sana_wm.models import preset
from sana_wm.models.attention import BlockContext, ray_transforms
from sana_wm.models.dit import SanaWMBlock
from sana_wm.ops.rope import rope_tables


def block_inputs(cfg, batch, frames, height, width, device, dtype, backend, lean=False):
    gen = torch.Generator(device="cpu").manual_seed(0)
    tokens = frames * height * width
    dim = cfg.hidden_size
    x = torch.randn(batch, tokens, dim, generator=gen).to(device)  # the model's fp32 residual stream
    text = torch.randn(batch, 300, dim, generator=gen).to(device, dtype)
    keep = torch.ones(batch, 300, dtype=torch.bool, device=device)
    t0 = (0.1 * torch.randn(batch, frames, 6, dim, generator=gen)).to(device, dtype)
    plucker = (0.1 * torch.randn(batch, tokens, dim, generator=gen)).to(device, dtype)
    pose = torch.eye(4).repeat(batch, frames, 1, 1)
    pose[:, :, 2, 3] = 0.2 * torch.arange(frames, dtype=torch.float32)
    focal = 0.5 * width / math.tan(math.radians(30.0))
    intr = torch.tensor([focal, focal, width / 2, height / 2]).expand(batch, frames, 4)
    camera = torch.cat([pose.flatten(2), intr], dim=-1).to(device)
    grid = (frames, height, width)
    cos, sin = rope_tables(*grid, cfg.head_dim, device=device)
    rays = ray_transforms(camera, grid, cos, sin, cfg.head_dim)
    chunks = (5, 16) if lean else (None, None)  # MemoryPlan.lean()
    ctx = BlockContext(grid, cos, sin, rays, backend, False, *chunks)
    return x, text, keep, t0, plucker, ctx


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=961)
    p.add_argument("--device", default="cuda")
    p.add_argument("--backend", default="torch")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--rows", type=int, default=30)
    p.add_argument("--lean", action="store_true", help="5 heads and 16 latent frames at a time")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    cfg = preset("tiny" if args.tiny else "sana_wm_1600m_720p")
    height, width = (4, 6) if args.tiny else (22, 40)
    frames = (args.frames - 1) // 8 + 1
    dtype = torch.bfloat16 if cuda else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    log = io.StringIO()

    def say(*parts):
        print(*parts)
        print(*parts, file=log)

    card = torch.cuda.get_device_name() if cuda else "cpu"
    say(f"device {card}, torch {torch.__version__}, frames {args.frames}, backend {args.backend}")
    say(f"memory plan: {'lean (5 heads, 16 frames at a time)' if args.lean else 'none'}")
    inputs = block_inputs(cfg, 2, frames, height, width, device, dtype, args.backend, args.lean)

    def fresh():  # blocks update the residual stream in place without autograd
        return (inputs[0].clone(), *inputs[1:])

    for index in (0, cfg.softmax_every_n - 1):
        block = SanaWMBlock(cfg, index).to(device, dtype).eval()
        with torch.no_grad():
            block(*fresh())
            args_ = fresh()
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            block(*args_)
            sync()
            seconds = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
            name = type(block.attn).__name__
            say(f"\n## block {index} ({name}): {seconds * 1e3:.1f} ms, peak {peak:.2f} GiB")
            activities = [torch.profiler.ProfilerActivity.CPU]
            if cuda:
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            args_ = fresh()
            with torch.profiler.profile(activities=activities) as prof:
                block(*args_)
                sync()
        key = "cuda_time_total" if cuda else "cpu_time_total"
        say(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=70))
        del block
    if cuda:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        n, e, tokens = cfg.num_heads, cfg.head_dim, frames * height * width
        q = torch.randn(2, tokens, n, e, device=device, dtype=dtype).transpose(1, 2)
        k, v = torch.randn_like(q), torch.randn_like(q)
        flop = 4 * 2 * n * tokens * tokens * e
        for name in ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION"):
            try:
                with sdpa_kernel(getattr(SDPBackend, name)):
                    F.scaled_dot_product_attention(q, k, v)
                    sync()
                    start = time.perf_counter()
                    F.scaled_dot_product_attention(q, k, v)
                    sync()
                secs = time.perf_counter() - start
                rate = flop / secs / 1e12
                say(f"SDPA {name} E={e} transposed layout: {secs * 1e3:.0f} ms, {rate:.0f} TFLOP/s")
            except RuntimeError as err:
                say(f"SDPA {name}: failed: {str(err).splitlines()[0][:120]}")
        with contextlib.suppress(RuntimeError):
            a = torch.randn(8192, 8192, device=device, dtype=dtype)
            a @ a
            sync()
            start = time.perf_counter()
            for _ in range(10):
                a @ a
            sync()
            say(f"bf16 matmul 8192^3: {10 * 2 * 8192**3 / (time.perf_counter() - start) / 1e12:.0f} TFLOP/s")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(log.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
