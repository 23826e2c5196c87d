"""Memory options: the audio stream dropped, fp8 weight storage, block streaming (all on the CPU here)."""

from __future__ import annotations

import copy

import torch
from helpers import tiny_refiner

from sana_wm.inference.refiner import Refiner, video_only


def _copy(parts, **kwargs) -> Refiner:
    return Refiner(copy.deepcopy(parts.transformer), parts.connectors, None, **kwargs)


def test_video_only_drops_the_audio_stream_and_keeps_the_output(prompt) -> None:
    full = tiny_refiner.transformer()
    stripped = video_only(copy.deepcopy(full))
    kept = [n.split(".") for n, _ in stripped.named_parameters()]
    # Exactly what the video-only forward uses: embedders, output layer, and per block attn1/attn2/ff/table.
    assert {n[0] for n in kept} == {
        "proj_in",
        "time_embed",
        "caption_projection",
        "transformer_blocks",
        "scale_shift_table",
        "proj_out",
    }
    assert {n[2] for n in kept if n[0] == "transformer_blocks"} == {
        "attn1",
        "attn2",
        "ff",
        "scale_shift_table",
    }
    n_full = sum(p.numel() for p in full.parameters())
    assert sum(p.numel() for p in stripped.parameters()) < 0.75 * n_full
    z = tiny_refiner.latents(5, seed=15)
    want = Refiner(full, tiny_refiner.connectors(), None)(z, prompt, progress=False)
    assert torch.equal(Refiner(stripped, tiny_refiner.connectors(), None)(z, prompt, progress=False), want)


def test_fp8_storage_equals_weights_rounded_to_fp8(parts, prompt) -> None:
    """Layerwise casting computes with the fp8-rounded weights: same result as rounding them by hand."""
    z = tiny_refiner.latents(6, seed=16)
    fp8 = _copy(parts, fp8=True)
    stored = {n: p for n, p in fp8.transformer.named_parameters() if p.dtype == torch.float8_e4m3fn}
    assert len(stored) > 20 and "transformer_blocks.0.ff.net.0.proj.weight" in stored
    assert not any("norm" in n for n in stored) and "proj_in.weight" not in stored
    rounded = _copy(parts)
    with torch.no_grad():
        for name, param in rounded.transformer.named_parameters():
            if name in stored:
                param.copy_(stored[name].to(torch.float32))
    got = fp8(z, prompt, progress=False)
    assert torch.equal(got, rounded(z, prompt, progress=False))
    assert (got - _copy(parts)(z, prompt, progress=False)).abs().max() > 1e-4  # fp8 is not a no-op


def test_block_streaming_and_model_offload_do_not_change_the_result(parts, prompt) -> None:
    z = tiny_refiner.latents(8, seed=17)
    chunk = dict(mode="chunk_causal", kv_max_frames=4, progress=False)
    want = _copy(parts)(z, prompt, **chunk)
    assert torch.equal(_copy(parts, offload="group")(z, prompt, **chunk), want)
    assert torch.equal(_copy(parts, offload="model")(z, prompt, **chunk), want)
    fp8 = _copy(parts, fp8=True)(z, prompt, **chunk)
    assert torch.equal(_copy(parts, offload="group", fp8=True)(z, prompt, **chunk), fp8)
