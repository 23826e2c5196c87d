"""GPU check of the chunk-causal kernels: a tiny model streamed chunk by chunk with the Triton backend against
one windowed forward with the torch backend (fp32 and bf16); and the same stream with its steady-state
forwards replayed as CUDA graphs (sana_wm.inference.stream_graphs) against the eager stream. Prints relative
L2 errors; exits 1 above the bounds.

    python benchmarks/stream_parity_gpu.py
"""

from __future__ import annotations

import dataclasses
import sys

import torch

sys.path.insert(0, "tests")
from helpers.parity import perturb_all_parameters, random_inputs  # noqa: E402

from sana_wm.inference.stream_graphs import GraphedStreamForward  # noqa: E402
from sana_wm.models import SanaWMTransformer, tiny  # noqa: E402
from sana_wm.models.causal import ChunkLayout, StreamCache  # noqa: E402
from sana_wm.samplers.chunked import autoregressive_segments  # noqa: E402


def _frames(inputs, start, end):
    out = dict(inputs)
    for key, dim in (("latents", 2), ("timestep", 2), ("chunk_plucker", 2), ("camera_conditions", 1)):
        out[key] = inputs[key].narrow(dim, start, end - start)
    return out


def _tiny(dtype: torch.dtype, frames: int) -> tuple[SanaWMTransformer, dict[str, torch.Tensor]]:
    """The tiny model (blocks G S G S, every parameter perturbed) and random inputs at 22 x 40, on CUDA."""
    torch.manual_seed(0)
    model = SanaWMTransformer(dataclasses.replace(tiny(), softmax_every_n=2))
    perturb_all_parameters(model, 0)
    model = model.to("cuda", dtype).eval()
    inputs = {k: v.to("cuda") for k, v in random_inputs(1, 1, frames, 22, 40).items()}
    for key in ("latents", "text", "chunk_plucker"):
        inputs[key] = inputs[key].to(dtype)
    return model, inputs


@torch.no_grad()
def check(dtype: torch.dtype, frames: int, bound: float) -> bool:
    model, inputs = _tiny(dtype, frames)
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


@torch.no_grad()
def check_graphs(dtype: torch.dtype, frames: int, bound: float) -> bool:
    """Four steps and a write pass per chunk, eager against graphed (real CUDA graphs)."""
    model, inputs = _tiny(dtype, frames)
    names = ("latents", "timestep", "text", "text_mask", "camera_conditions", "chunk_plucker")

    def rollout(forward) -> torch.Tensor:
        cache = StreamCache(len(model.blocks), window=2, sink=True)
        outs = []
        for s, e in autoregressive_segments(frames, 3):
            part = _frames(inputs, s, e)
            for step in range(5):
                x = part["latents"] * (1.0 - 0.1 * step)
                args = [x, *(part[n] for n in names[1:])]
                outs.append(forward(*args, cache=cache, write_cache=step == 4).float())
        return torch.cat(outs, 2)

    def eager(*args, cache, write_cache):
        return model(*args, backend="triton", cache=cache, write_cache=write_cache)

    graphed = GraphedStreamForward(model, backend="triton")
    want, got = rollout(eager), rollout(graphed)
    err = float((got - want).norm() / want.norm())
    print(
        f"tiny {dtype} {frames} frames: graphed vs eager stream: rel L2 {err:.2e} <= {bound}? "
        f"(eager {graphed.eager}, recorded {graphed.recorded}, replayed {graphed.replayed}, "
        f"disabled: {graphed.disabled})"
    )
    return err <= bound and graphed.replayed > 0


ok = check(torch.float32, 16, 1e-4) and check(torch.bfloat16, 16, 2e-2)
ok = check_graphs(torch.float32, 22, 1e-5) and check_graphs(torch.bfloat16, 22, 1e-2) and ok
sys.exit(0 if ok else 1)
