"""GPU check of the chunk-causal kernels: a tiny model streamed chunk by chunk with the Triton backend against
one windowed forward with the torch backend (fp32 and bf16). Prints relative L2 errors; exits 1 above the
bounds.

    python benchmarks/stream_parity_gpu.py
"""

from __future__ import annotations

import dataclasses
import sys

import torch

sys.path.insert(0, "tests")
from helpers.parity import perturb_all_parameters, random_inputs  # noqa: E402

from sana_wm.models import SanaWMTransformer, tiny  # noqa: E402
from sana_wm.models.causal import ChunkLayout, StreamCache  # noqa: E402
from sana_wm.samplers.chunked import autoregressive_segments  # noqa: E402


def _frames(inputs, start, end):
    out = dict(inputs)
    for key, dim in (("latents", 2), ("timestep", 2), ("chunk_plucker", 2), ("camera_conditions", 1)):
        out[key] = inputs[key].narrow(dim, start, end - start)
    return out


@torch.no_grad()
def check(dtype: torch.dtype, frames: int, bound: float) -> bool:
    torch.manual_seed(0)
    model = SanaWMTransformer(dataclasses.replace(tiny(), softmax_every_n=2))
    perturb_all_parameters(model, 0)
    model = model.to("cuda", dtype).eval()
    inputs = {k: v.to("cuda") for k, v in random_inputs(1, 1, frames, 22, 40).items()}
    for key in ("latents", "text", "chunk_plucker"):
        inputs[key] = inputs[key].to(dtype)
    segments = autoregressive_segments(frames, 3)
    starts = tuple(s for s, _ in segments)
    one_pass = model(**inputs, chunks=ChunkLayout(starts, window=2, sink=True), backend="torch").float()
    cache = StreamCache(len(model.blocks), window=2, sink=True)
    streamed = torch.cat(
        [
            model(**_frames(inputs, s, e), cache=cache, write_cache=True, backend="triton")
            for s, e in segments
        ],
        2,
    ).float()
    err = float((streamed - one_pass).norm() / one_pass.norm())
    print(
        f"tiny {dtype} {frames} frames: streamed (triton) vs one pass (torch): rel L2 {err:.2e} <= {bound}?"
    )
    return err <= bound


ok = check(torch.float32, 16, 1e-4) and check(torch.bfloat16, 16, 2e-2)
sys.exit(0 if ok else 1)
