"""Our refiner against diffusers' ``SanaWMLTX2Refiner`` and against the official single-shot formulation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_sana_wm_refiner import apply_interleaved_rotary_emb
from helpers import tiny_refiner

from sana_wm.inference.refiner import REFINER_SIGMAS

PARITY = 1e-5  # float32 on the CPU; measured max |diff| is ~1e-6 on values of magnitude ~4


@pytest.mark.parametrize(
    ("frames", "kwargs", "seed"),
    [
        (8, {}, 42),  # blocks [1,4) [4,7) [7,8): the defaults, a short last block
        (11, {"kv_max_frames": 4}, 7),  # history trimmed to 3 frames from the third block on
        (9, {"sink_size": 2, "block_size": 2, "kv_max_frames": 5}, 3),
        (8, {"kv_max_frames": 2}, 42),  # the realtime demo's window: 1 history frame, fewer than a block
    ],
    ids=["defaults", "trimmed_window", "sink2", "window2"],
)
def test_chunk_causal_matches_diffusers(parts, refiner, frames, kwargs, seed) -> None:
    z = tiny_refiner.latents(frames)
    oracle = tiny_refiner.oracle(parts, max_length=tiny_refiner.TEXT_LENGTH)
    generator = torch.Generator().manual_seed(seed)
    want = oracle(z, tiny_refiner.PROMPT, fps=16, generator=generator, output_type="latent", **kwargs)
    got = refiner(z, tiny_refiner.PROMPT, mode="chunk_causal", seed=seed, fps=16, progress=False, **kwargs)
    assert (got - want).abs().max().item() <= PARITY
    sink = kwargs.get("sink_size", 1)
    moved_T = (want - z).abs().amax(dim=(0, 1, 3, 4))
    assert moved_T[:sink].max() == 0 and moved_T[sink:].min() > 0.5  # the sink is kept, the rest refined


def test_single_shot_matches_diffusers_with_one_block(parts, refiner) -> None:
    z = tiny_refiner.latents(8, seed=6)
    oracle = tiny_refiner.oracle(parts, max_length=tiny_refiner.TEXT_LENGTH)
    generator = torch.Generator().manual_seed(42)
    want = oracle(
        z,
        tiny_refiner.PROMPT,
        fps=16,
        block_size=7,
        kv_max_frames=8,
        generator=generator,
        output_type="latent",
    )
    got = refiner(z, tiny_refiner.PROMPT, progress=False)
    assert (got - want).abs().max().item() <= PARITY


class _SinkMaskedSelfAttention:
    """Official single-shot self-attention: all tokens in one call; sink queries see only sink keys."""

    def __init__(self, sink_tokens: int) -> None:
        self.sink_tokens = sink_tokens

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        query_rotary_emb=None,
        key_rotary_emb=None,
        sink_rotary_emb=None,
        kv_cache=None,
        kv_cache_mode=None,
    ):
        q = apply_interleaved_rotary_emb(attn.norm_q(attn.to_q(hidden_states)), query_rotary_emb)
        k = apply_interleaved_rotary_emb(attn.norm_k(attn.to_k(hidden_states)), query_rotary_emb)
        v = attn.to_v(hidden_states)
        q, k, v = (t.unflatten(2, (attn.heads, -1)).transpose(1, 2) for t in (q, k, v))
        allowed = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool)
        allowed[: self.sink_tokens, self.sink_tokens :] = False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).transpose(1, 2).flatten(2)
        return attn.to_out[1](attn.to_out[0](out))


def _official_single_shot(transformer, prompt, z, sink: int, seed: int, fps: float) -> torch.Tensor:
    """The official loop: [sink, current] through the DiT in one call per step, RoPE over arange(T)."""
    batch, channels, frames, height, width = z.shape
    sink_tokens = sink * height * width
    rope = transformer.rope(
        transformer.rope.prepare_video_coords(batch, frames, height, width, z.device, fps=fps)
    )
    current = z[:, :, sink:]
    eps = torch.randn(current.shape, generator=torch.Generator().manual_seed(seed), dtype=z.dtype)
    sigmas = torch.tensor(REFINER_SIGMAS, dtype=torch.float32).tolist()
    x = (1 - sigmas[0]) * current + sigmas[0] * eps
    processors = [block.attn1.processor for block in transformer.transformer_blocks]
    for block in transformer.transformer_blocks:
        block.attn1.set_processor(_SinkMaskedSelfAttention(sink_tokens))
    try:
        for sigma, sigma_next in itertools.pairwise(sigmas):
            tokens = torch.cat([z[:, :, :sink], x], dim=2).permute(0, 2, 3, 4, 1).reshape(batch, -1, channels)
            timestep = torch.zeros(tokens.shape[:2])
            timestep[:, sink_tokens:] = sigma * transformer.config.timestep_scale_multiplier
            v = transformer(tokens, prompt.embeds_1LD, timestep, rope, prompt.mask_1L, return_dict=False)[0]
            v = (
                v[:, sink_tokens:]
                .reshape(batch, frames - sink, height, width, channels)
                .permute(0, 4, 1, 2, 3)
            )
            x = x + (sigma_next - sigma) * v
    finally:
        for block, processor in zip(transformer.transformer_blocks, processors, strict=True):
            block.attn1.set_processor(processor)
    return torch.cat([z[:, :, :sink], x], dim=2)


@pytest.mark.parametrize(("frames", "sink"), [(6, 1), (7, 2)])
def test_single_shot_equals_one_sink_masked_forward_per_step(parts, refiner, prompt, frames, sink) -> None:
    """Capturing the sink's K/V once and re-rotating it equals the official full-sequence masked forward."""
    z = tiny_refiner.latents(frames, seed=8)
    with torch.no_grad():
        want = _official_single_shot(parts.transformer, prompt, z, sink, seed=42, fps=16.0)
    got = refiner(z, prompt, sink_size=sink, progress=False)
    assert (got - want).abs().max().item() <= PARITY
