"""Chunk-causal and streaming execution of the transformer (fp32, tiny, CPU).

The streamed rollout (one chunk per forward, the cache carried) must equal one forward over all chunks with
the block-causal window rule, and that forward must equal an independent dense-mask attention; GDN states,
short-conv and FFN tails carried across chunks must equal one pass. (The Triton kernels are checked op by op
in tests/ops/test_chunk_causal_ops.py; the whole model streamed with them on a GPU by
benchmarks/stream_parity_gpu.py: the Triton interpreter takes minutes for a whole model.)
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from helpers.parity import perturb_all_parameters, random_inputs

from sana_wm.models import SanaWMTransformer, tiny
from sana_wm.models import attention as attention_module
from sana_wm.models.causal import ChunkLayout, StreamCache
from sana_wm.models.ffn import GLUMBConvTemp
from sana_wm.samplers.chunked import autoregressive_segments

FRAMES, HEIGHT, WIDTH = 16, 2, 3  # chunks [0,4) [4,7) [7,10) [10,13) [13,16)
SEGMENTS = autoregressive_segments(FRAMES, 3)
STARTS = tuple(s for s, _ in SEGMENTS)


def _model(seed: int = 0) -> SanaWMTransformer:
    torch.manual_seed(seed)
    model = SanaWMTransformer(dataclasses.replace(tiny(), softmax_every_n=2))  # blocks: G S G S
    perturb_all_parameters(model, seed)
    return model.eval()


def _inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    return random_inputs(seed, 2, FRAMES, HEIGHT, WIDTH)


def _frames(inputs: dict[str, torch.Tensor], start: int, end: int) -> dict[str, torch.Tensor]:
    """The inputs of latent frames ``[start, end)`` (text is shared)."""
    out = dict(inputs)
    out["latents"] = inputs["latents"][:, :, start:end]
    out["timestep"] = inputs["timestep"][:, :, start:end]
    out["camera_conditions"] = inputs["camera_conditions"][:, start:end]
    out["chunk_plucker"] = inputs["chunk_plucker"][:, :, start:end]
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@torch.no_grad()
def _stream(model: SanaWMTransformer, inputs: dict, window: int, sink: bool, backend: str) -> torch.Tensor:
    cache = StreamCache(len(model.blocks), window=window, sink=sink)
    outs = [
        model(**_frames(inputs, s, e), cache=cache, write_cache=True, backend=backend) for s, e in SEGMENTS
    ]
    return torch.cat(outs, dim=2)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize(("window", "sink"), [(0, True), (1, False), (2, True), (2, False), (3, True)])
def test_streamed_chunks_equal_one_windowed_forward(window: int, sink: bool, backend: str) -> None:
    model, inputs = _model(), _inputs()
    with torch.no_grad():
        one_pass = model(**inputs, chunks=ChunkLayout(STARTS, window=window, sink=sink), backend=backend)
    streamed = _stream(model, inputs, window, sink, backend)
    assert _rel(streamed, one_pass) <= 1e-5


def test_one_frame_chunks_stream_like_one_forward() -> None:
    """Chunks shorter than the short conv's taps: the carried tail has fewer frames than taps − 1 at first
    (zeros before the stream's start)."""
    model, inputs = _model(), random_inputs(1, 1, 5, HEIGHT, WIDTH)
    with torch.no_grad():
        one_pass = model(**inputs, chunks=ChunkLayout((0, 1, 2, 3, 4), window=2, sink=True), backend="torch")
        cache = StreamCache(len(model.blocks), window=2, sink=True)
        streamed = torch.cat(
            [
                model(**_frames(inputs, t, t + 1), cache=cache, write_cache=True, backend="torch")
                for t in range(5)
            ],
            dim=2,
        )
    assert _rel(streamed, one_pass) <= 1e-5


def _allowed(query_chunk: int, key_chunk: int, window: int, sink: bool) -> bool:
    """The official read rule, written out again: own chunk; earlier ones by the window (sink replaces the
    oldest slot once the window has moved past chunk 0)."""
    if key_chunk == query_chunk:
        return True
    if key_chunk > query_chunk:
        return False
    if window <= 0:
        return True
    if sink and query_chunk - window + 1 > 0:
        return key_chunk == 0 or key_chunk >= query_chunk - window + 1
    return key_chunk >= query_chunk - window


@pytest.mark.parametrize(("window", "sink"), [(0, True), (1, False), (2, True), (2, False), (3, True)])
def test_windowed_forward_equals_a_dense_block_mask(
    window: int, sink: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, inputs = _model(), _inputs()
    layout = ChunkLayout(STARTS, window=window, sink=sink)
    with torch.no_grad():
        want_routed = model(**inputs, chunks=layout)
    chunk_of_token = torch.tensor(
        [i for i, (s, e) in enumerate(SEGMENTS) for _ in range((e - s) * HEIGHT * WIDTH)]
    )
    mask_MM = torch.tensor(
        [[_allowed(int(a), int(b), window, sink) for b in chunk_of_token] for a in chunk_of_token]
    )

    def dense(q, k, v, scale, ctx, cached):  # noqa: ANN001, ANN202 - the patched function's signature
        assert not cached
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask_MM, scale=scale)

    monkeypatch.setattr(attention_module, "_attend", dense)
    with torch.no_grad():
        masked = model(**inputs, chunks=layout)
    assert _rel(want_routed, masked) <= 1e-5


def test_read_only_passes_leave_the_cache_as_it_was() -> None:
    """Denoising passes (``write_cache=False``) of chunk 2 read the cache of chunks 0-1 and equal the one-pass
    forward with chunk 2's new input; repeating them gives the same numbers."""
    model, inputs = _model(), _inputs()
    cache = StreamCache(len(model.blocks), window=2, sink=True)
    with torch.no_grad():
        for s, e in SEGMENTS[:2]:
            model(**_frames(inputs, s, e), cache=cache, write_cache=True)
        s, e = SEGMENTS[2]
        noisy = dict(_frames(inputs, s, e), latents=torch.randn(2, 16, e - s, HEIGHT, WIDTH))
        noisy["timestep"] = torch.full((2, 1, e - s), 700.0)
        first = model(**noisy, cache=cache)
        second = model(**noisy, cache=cache)
        full = dict(_frames(inputs, 0, e))
        full["latents"] = torch.cat([inputs["latents"][:, :, :s], noisy["latents"]], dim=2)
        full["timestep"] = torch.cat([inputs["timestep"][:, :, :s], noisy["timestep"]], dim=2)
        one_pass = model(**full, chunks=ChunkLayout(STARTS[:3], window=2, sink=True))
    assert torch.equal(first, second)
    assert cache.chunks == 2 and cache.frames == s
    assert _rel(first, one_pass[:, :, s:e]) <= 1e-5


def test_chunk_causal_with_one_chunk_is_the_bidirectional_model_and_later_chunks_are_invisible() -> None:
    model, inputs = _model(), _inputs()
    with torch.no_grad():
        bidirectional = model(**inputs)
        one_chunk = model(**inputs, chunks=ChunkLayout((0,)))
        causal = model(**inputs, chunks=ChunkLayout(STARTS))
        changed = dict(inputs, latents=inputs["latents"].clone())
        changed["latents"][:, :, STARTS[-1] :] += 1.0
        causal_changed = model(**changed, chunks=ChunkLayout(STARTS))
    assert _rel(one_chunk, bidirectional) <= 1e-6
    assert torch.equal(causal[:, :, : STARTS[-1]], causal_changed[:, :, : STARTS[-1]])
    assert _rel(causal[:, :, STARTS[-1] :], causal_changed[:, :, STARTS[-1] :]) > 1e-3
    assert _rel(causal, bidirectional) > 1e-3  # the causal variant really is different


def test_chunk_causal_config_runs_its_own_chunks() -> None:
    """A config with ``chunk_size`` runs chunk-causal by default (first chunk = image frame + 3)."""
    model = _model()
    causal = SanaWMTransformer(dataclasses.replace(model.config, chunk_size=3)).eval()
    causal.load_state_dict(model.state_dict())
    inputs = _inputs()
    with torch.no_grad():
        want = model(**inputs, chunks=ChunkLayout((0, 4, 7, 10, 13)))
        assert torch.equal(causal(**inputs), want)


def test_stream_cache_memory_stops_growing_after_the_window_fills() -> None:
    model, inputs = _model(), _inputs()
    cache = StreamCache(len(model.blocks), window=2, sink=True)
    sizes = []
    with torch.no_grad():
        for s, e in SEGMENTS[1:]:  # equal 3-frame chunks after the first
            model(**_frames(inputs, s, e), cache=cache, write_cache=True)
            sizes.append(cache.nbytes())
    assert sizes[1] > sizes[0]  # the sink and the previous chunk
    assert sizes[1] == sizes[2] == sizes[3]
    assert sorted(cache.blocks[1].keys) == [0, 3]


def test_ffn_chunk_conv_equals_the_official_padding_rule() -> None:
    """Chunk-causal temporal conv: each chunk padded with the previous chunk's last frame on the left and a
    zero frame on the right, then the stored Conv2d (official ``ChunkGLUMBConvTemp``); streamed chunks with
    the tail carried give the same."""
    torch.manual_seed(0)
    ffn = GLUMBConvTemp(8, 12, 3)
    y_BTSD = torch.randn(2, 10, 6, 8)
    ends = [4, 7, 10]
    weight_KDD = ffn.t_conv.weight[..., 0].permute(2, 0, 1).contiguous()
    got = torch.empty_like(y_BTSD)
    ffn._temporal(y_BTSD, weight_KDD, got, 0, 10, ends)
    y_BDTS = y_BTSD.permute(0, 3, 1, 2)
    parts, start = [], 0
    for end in ends:
        left = y_BDTS[:, :, start - 1 : start] if start else torch.zeros_like(y_BDTS[:, :, :1])
        padded = torch.cat([left, y_BDTS[:, :, start:end], torch.zeros_like(left)], dim=2)
        conv = F.conv2d(padded, ffn.t_conv.weight)  # no padding: exactly the chunk's frames
        parts.append(y_BDTS[:, :, start:end] + conv)
        start = end
    want = torch.cat(parts, dim=2).permute(0, 2, 3, 1)
    assert (got - want).abs().max() <= 1e-5
    streamed = torch.empty_like(y_BTSD)
    start = 0
    for end in ends:
        left = y_BTSD[:, start - 1 : start] if start else None
        ffn._temporal(y_BTSD[:, start:end], weight_KDD, streamed[:, start:end], 0, end - start, None, left)
        start = end
    assert (streamed - want).abs().max() <= 1e-5
