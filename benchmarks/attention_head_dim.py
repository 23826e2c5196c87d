"""Two launch choices of the fast path, timed at the 961-frame shapes on the GPU.

1. cuDNN attention (SDPA) at head dim 112 against the same attention zero-padded to 128 (q/k/v padded
   with zeros, scale 1/√112 passed explicitly, the output sliced back; the padding copies are timed too),
   for one head group of the lean plan (5 heads) and for all 20 heads, in the model's ``(B, M, N, E)`` memory
   layout seen as ``(B, N, M, E)``. TFLOP/s count the useful work at E = 112.
2. The FFN's depthwise/GLU kernel (``sana_wm.ops.glu_conv.triton_kernel``) on one 16-frame chunk for a few
   ``(BLOCK_P, BLOCK_C, num_warps)`` launch shapes.

    python benchmarks/attention_head_dim.py --out $OUT/head_dim.json
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from sana_wm.utils.atomic import atomic_output


def timed(fn, repeats: int = 3) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def attention_rows(tokens: int, heads: int, head_dim: int = 112, padded: int = 128) -> list[dict]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape = (2, tokens, heads, head_dim)
    q, k, v = (torch.randn(shape, generator=gen, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    flop = 4 * 2 * heads * tokens * tokens * head_dim
    scale = head_dim**-0.5

    def plain():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))

    def pad():
        wide = [F.pad(x, (0, padded - head_dim)) for x in (q, k, v)]
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            out = F.scaled_dot_product_attention(*(x.transpose(1, 2) for x in wide), scale=scale)
        return out[..., :head_dim]

    ref = plain().float()
    got = pad().float()
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    rows = []
    for name, fn in (("E=112", plain), (f"padded to {padded} (incl. copies)", pad)):
        ms = timed(fn)
        rows.append({"heads": heads, "variant": name, "ms": ms, "tflops_useful": flop / ms / 1e9})
        print(f"heads {heads:2d} {name:32s} {ms:8.1f} ms  {flop / ms / 1e9:6.0f} TFLOP/s useful", flush=True)
    rows[-1]["max_rel_vs_plain"] = err
    return rows


def glu_rows(dim: int = 2240, chunk_frames: int = 16) -> list[dict]:
    from sana_wm.ops.glu_conv import triton_kernel as triton_glu_conv

    gen = torch.Generator(device="cuda").manual_seed(1)
    s = torch.randn(2 * chunk_frames, 22, 40, 6 * dim, generator=gen, device="cuda", dtype=torch.bfloat16)
    weight = torch.randn(6 * dim, 1, 3, 3, generator=gen, device="cuda", dtype=torch.bfloat16)
    bias = torch.randn(6 * dim, generator=gen, device="cuda", dtype=torch.bfloat16)
    moved = s.numel() * 2 * 1.5  # read G channels, write G/2
    rows, default = [], (triton_glu_conv.BLOCK_P, triton_glu_conv.BLOCK_C, triton_glu_conv.WARPS)
    ref = triton_glu_conv.dwconv_glu_triton(s, weight, bias)
    for shape in ((32, 64, 4), (64, 64, 4), (32, 128, 4), (64, 128, 8), (128, 64, 8), (16, 128, 4)):
        triton_glu_conv.BLOCK_P, triton_glu_conv.BLOCK_C, triton_glu_conv.WARPS = shape
        ms = timed(lambda: triton_glu_conv.dwconv_glu_triton(s, weight, bias))
        same = torch.equal(triton_glu_conv.dwconv_glu_triton(s, weight, bias), ref)
        rows.append({"block_p_c_warps": shape, "ms": ms, "gb_per_s": moved / ms / 1e6, "same_output": same})
        print(f"glu {shape}: {ms:6.2f} ms  {moved / ms / 1e6:6.0f} GB/s  same {same}", flush=True)
    triton_glu_conv.BLOCK_P, triton_glu_conv.BLOCK_C, triton_glu_conv.WARPS = default
    return rows


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=961)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    tokens = ((args.frames - 1) // 8 + 1) * 22 * 40
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "tokens": tokens}
    report["attention"] = attention_rows(tokens, 5) + attention_rows(tokens, 20)
    report["glu"] = glu_rows()
    if args.out:
        with atomic_output(args.out) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
