"""RefinerStream: the chunk-causal refiner one block at a time equals the whole-tensor refiner, holds a
bounded state, and each block depends on the history window it was refined under."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import tiny_refiner

from sana_wm.inference.refiner_stream import RefinerPrompt, RefinerStream

PARITY = 1e-5  # float32 on the CPU
BLOCK = 3


def _stream(refiner, prompt, **kwargs) -> RefinerStream:
    return RefinerStream(refiner.transformer, prompt, block_size=BLOCK, **kwargs)


def _blocks(z_1CThw: torch.Tensor, sink: int = 1) -> list[torch.Tensor]:
    return [z_1CThw[:, :, s : s + BLOCK] for s in range(sink, z_1CThw.shape[2], BLOCK)]


def _run(stream: RefinerStream, z_1CThw: torch.Tensor, *, eager: bool = False) -> torch.Tensor:
    parts = [stream.start(z_1CThw[:, :, : stream.sink_size])]
    for block in _blocks(z_1CThw, stream.sink_size):
        parts.append(stream.refine_block(block))
        if eager:
            stream.capture_history()
    return torch.cat(parts, dim=2)


@pytest.mark.parametrize("frames", [1 + 3 * 5, 1 + 3 * 5 + 2], ids=["whole_blocks", "short_last_block"])
@pytest.mark.parametrize("kv_max_frames", [4, 7, 11])
def test_stepping_blocks_equals_refine_latents(parts, refiner, prompt, kv_max_frames, frames) -> None:
    """Block by block == the whole tensor (ours) == diffusers' SanaWMLTX2Refiner (an independent loop)."""
    z = tiny_refiner.latents(frames, seed=21)
    whole = refiner(z, prompt, mode="chunk_causal", kv_max_frames=kv_max_frames, seed=42, progress=False)
    stepped = _run(_stream(refiner, prompt, kv_max_frames=kv_max_frames, seed=42), z)
    assert stepped.shape == z.shape and (stepped - whole).abs().max().item() <= PARITY
    assert torch.equal(stepped[:, :, :1], z[:, :, :1])  # the sink is output verbatim
    # Running each capture pass right after its block (instead of lazily) changes nothing.
    eager = _run(_stream(refiner, prompt, kv_max_frames=kv_max_frames, seed=42), z, eager=True)
    assert torch.equal(eager, stepped)
    oracle = tiny_refiner.oracle(parts, max_length=tiny_refiner.TEXT_LENGTH)
    want = oracle(
        z,
        tiny_refiner.PROMPT,
        fps=16,
        generator=torch.Generator().manual_seed(42),
        output_type="latent",
        kv_max_frames=kv_max_frames,
    )
    assert (stepped - want).abs().max().item() <= PARITY


@pytest.mark.parametrize("kv_max_frames", [2, 7])
def test_state_is_constant_once_the_history_window_is_full(refiner, prompt, kv_max_frames) -> None:
    """Bytes held after each block: they grow while the window fills, then stay put for every later block."""
    z = tiny_refiner.latents(1 + 3 * 8, seed=22)
    stream = _stream(refiner, prompt, kv_max_frames=kv_max_frames)
    stream.start(z[:, :, :1])
    tokens_per_frame = z.shape[3] * z.shape[4]
    inner_dim = refiner.transformer.config.num_attention_heads * refiner.transformer.config.attention_head_dim
    layers = len(refiner.transformer.transformer_blocks)
    sizes = []
    for block in _blocks(z):
        stream.refine_block(block)
        held = stream.state_tensors()
        counted = sum(t.numel() * t.element_size() for t in held)
        # Every held tensor owns its storage (no view keeps a larger, evicted buffer alive).
        assert stream.nbytes() == counted
        sizes.append(counted)
    history = min(kv_max_frames - 1, 3 * 7)  # frames of history after 7 captured blocks
    kv_bytes = layers * 2 * (1 + history) * tokens_per_frame * inner_dim * 4
    rope_bytes = 2 * tokens_per_frame * inner_dim * 4  # the sink's cos and sin
    block_bytes = z[:, :, :BLOCK].numel() * 4  # the last refined block, awaiting its capture pass
    assert sizes[-1] == kv_bytes + rope_bytes + block_bytes
    full = -(-(kv_max_frames - 1) // BLOCK) + 1  # blocks refined when the window is first full
    assert sizes[full - 1 :] == [sizes[-1]] * (len(sizes) - full + 1) and sizes[0] < sizes[-1]


def test_a_block_depends_on_its_history_window(refiner, prompt) -> None:
    """Same stage-1 block, same noise: a different history (content or window length) gives another result,
    and blocks refined under equal windows are equal."""
    z = tiny_refiner.latents(10, seed=23)
    edited = z.clone()
    edited[:, :, 4:7] += torch.randn(edited[:, :, 4:7].shape, generator=torch.Generator().manual_seed(1))
    base = _run(_stream(refiner, prompt, kv_max_frames=7), z)
    other_history = _run(_stream(refiner, prompt, kv_max_frames=7), edited)
    assert torch.equal(base[:, :, :4], other_history[:, :, :4])
    moved_T = (base[:, :, 7:] - other_history[:, :, 7:]).abs().amax(dim=(0, 1, 3, 4))
    assert moved_T.min() > 1e-3  # ~5e-3 with the tiny model; float noise is ~1e-6

    # kv_max_frames 4 (3 history frames) vs 7 (6): blocks 0 and 1 see the same window, block 2 does not.
    short_window = _run(_stream(refiner, prompt, kv_max_frames=4), z)
    assert torch.equal(base[:, :, :7], short_window[:, :, :7])
    assert (base[:, :, 7:] - short_window[:, :, 7:]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-3


def test_no_grad_inside_and_the_returned_block_is_the_callers(refiner, prompt) -> None:
    """Without the caller's no_grad nothing records a graph; editing a returned block does not change the
    capture pass that the next block attends to."""
    z = tiny_refiner.latents(7, seed=24)
    want = _run(_stream(refiner, prompt), z)
    stream = _stream(refiner, prompt)
    sink = stream.start(z[:, :, :1])
    first = stream.refine_block(z[:, :, 1:4])
    assert not first.requires_grad and not any(t.requires_grad for t in stream.state_tensors())
    kept = first.clone()
    first.zero_()
    second = stream.refine_block(z[:, :, 4:7])
    assert torch.equal(torch.cat([sink, kept, second], dim=2), want)


def test_defaults_and_misuse(refiner, prompt) -> None:
    z = tiny_refiner.latents(6, seed=25)
    bf16_prompt = RefinerPrompt(prompt.embeds_1LD.to(torch.bfloat16), prompt.mask_1L)
    stream = RefinerStream(copy.deepcopy(refiner.transformer).to(torch.bfloat16), bf16_prompt)
    assert stream.device == torch.device("cpu") and stream.dtype == torch.bfloat16
    assert stream.block_size == 3 and stream.kv_max_frames == 11 and stream.sink_size == 1
    with pytest.raises(RuntimeError, match="call start"):
        stream.refine_block(z[:, :, 1:4])
    with pytest.raises(ValueError, match=r"expected \(B, C, 1, h, w\)"):
        stream.start(z[:, :, :2])
    assert stream.start(z[:, :, :1]).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"T must be in \[1, 3\], got 4"):
        stream.refine_block(z[:, :, 1:5])
    with pytest.raises(ValueError, match=r"expected \(1, 8, T, 2, 3\)"):
        stream.refine_block(z[:, :4, 1:4])
    assert stream.refine_block(z[:, :, 1:3]).shape == (1, 8, 2, 2, 3) and stream.next_frame == 3
    with pytest.raises(RuntimeError, match="was the last"):
        stream.refine_block(z[:, :, 3:6])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_stream_equals_refine_latents(refiner, prompt) -> None:
    """Device from the transformer, generator on it; under the caller's no_grad as without."""
    from sana_wm.inference.refiner_stream import refine_latents

    transformer = copy.deepcopy(refiner.transformer).cuda()
    cuda_prompt = RefinerPrompt(prompt.embeds_1LD.cuda(), prompt.mask_1L.cuda())
    z = tiny_refiner.latents(1 + 3 * 4 + 2, seed=26).cuda()
    with torch.no_grad():
        want = refine_latents(
            transformer,
            cuda_prompt,
            z,
            sink_size=1,
            block_size=3,
            kv_max_frames=7,
            sigmas=(0.909375, 0.725, 0.421875, 0.0),
            generator=torch.Generator(device="cuda").manual_seed(42),
            fps=16.0,
        )
        stream = RefinerStream(transformer, cuda_prompt, kv_max_frames=7)
        assert stream.device.type == "cuda"
        got = _run(stream, z)
    assert got.device.type == "cuda" and (got - want).abs().max().item() <= PARITY
    assert stream.nbytes() == sum(t.numel() * t.element_size() for t in stream.state_tensors())
