"""On a GPU: stage 1's models leave it before the refiner runs, and come back for the next generation."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers.tiny_parts import HEIGHT, INTRINSICS, PROMPT, WIDTH

from sana_wm.inference import GenerationRequest
from sana_wm.inference.pipeline import Pipeline
from sana_wm.inference.refiner import Refiner
from sana_wm.inference.two_stage import generate_two_stage
from sana_wm.inference.weights import resolve_refiner_weights
from sana_wm.text_encoder import TextEncoder
from sana_wm.vae import VideoVAE

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
STAGE1 = dict(action="w-8,jw-8", intrinsics=INTRINSICS, num_frames=17, steps=2, height=HEIGHT, width=WIDTH)


def _cuda_pipeline(tiny, offload: str = "none") -> Pipeline:
    """The tiny components copied (the session's CPU ones stay where they are) onto the GPU."""
    text_encoder = TextEncoder(copy.deepcopy(tiny.gemma), tiny.tokenizer)
    vae = VideoVAE(copy.deepcopy(tiny.vae))
    return Pipeline(copy.deepcopy(tiny.ours), text_encoder, vae, device="cuda", offload=offload)


def _devices(module: torch.nn.Module) -> set[str]:
    return {p.device.type for p in module.parameters()}


def test_release_models_frees_the_gpu_and_the_next_call_takes_them_back(tiny) -> None:
    pipeline = _cuda_pipeline(tiny)
    request = GenerationRequest.create(tiny.image, PROMPT, seed=5, **STAGE1)
    before = pipeline(request, progress=False)
    torch.cuda.synchronize()
    allocated = torch.cuda.memory_allocated()
    stage1_bytes = sum(
        p.numel() * p.element_size()
        for m in (pipeline.transformer, pipeline.text_encoder.model)
        for p in m.parameters()
    )
    pipeline.release_models()
    assert _devices(pipeline.transformer) == _devices(pipeline.text_encoder.model) == {"cpu"}
    assert _devices(pipeline.vae.vae) == {"cuda"}
    assert allocated - torch.cuda.memory_allocated() >= stage1_bytes

    again = pipeline(request, progress=False)
    assert _devices(pipeline.transformer) == _devices(pipeline.text_encoder.model) == {"cuda"}
    torch.testing.assert_close(again.latents, before.latents, rtol=0, atol=1e-5)


@pytest.mark.parametrize("offload", ["none", "model"])
def test_two_stage_on_the_gpu_is_the_refiner_on_the_stage1_latents(tiny, refiner_dir, offload) -> None:
    paths = resolve_refiner_weights(refiner_dir, refiner_dir / "text_encoder", local_files_only=True)
    pipeline = _cuda_pipeline(tiny, offload)
    request = GenerationRequest.create(tiny.image, PROMPT, seed=5, **STAGE1)
    out = generate_two_stage(pipeline, request, refiner=paths, progress=False)
    assert _devices(pipeline.transformer) == {"cpu"} and out.latents.device.type == "cpu"
    refiner = Refiner.from_paths(paths, device="cuda", dtype=torch.float32)
    want = refiner(out.stage1.latents, PROMPT, progress=False).cpu()
    torch.testing.assert_close(out.latents, want, rtol=0, atol=1e-5)
    assert out.frames.numpy().shape == (16, HEIGHT, WIDTH, 3)
    assert {"refiner_load", "refine_text", "refine", "decode"} <= set(out.peak_memory_gib)
