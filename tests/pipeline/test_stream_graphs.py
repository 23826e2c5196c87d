"""Replaying recorded stream forwards (sana_wm.inference.stream_graphs) equals the eager stream.

On a CPU the graph is :class:`EmulatedGraph` (a replay re-runs the recorded function into the recorded
outputs): what is checked here is everything around the graph, i.e. that copying inputs, RoPE tables and the
cache into static buffers, and copying a write pass's outputs back into the stream's cache, reproduces the
eager rollout exactly, for several windows, with and without the sink; and that only steady-state shapes are
recorded. (The real CUDA graph runs in benchmarks/stream_parity_gpu.py on a GPU.)
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers.parity import perturb_all_parameters, random_inputs

from sana_wm.inference.stream_graphs import (
    EmulatedGraph,
    GraphedStreamForward,
    cache_signature,
    cache_tensors,
)
from sana_wm.models import SanaWMTransformer, tiny
from sana_wm.models.causal import StreamCache
from sana_wm.samplers.chunked import autoregressive_segments

FRAMES = 16  # chunks [0,4) [4,7) [7,10) [10,13) [13,16)
SEGMENTS = autoregressive_segments(FRAMES, 3)
STEPS = 1  # read-only passes per chunk before the write pass


@pytest.fixture(scope="module")
def model() -> SanaWMTransformer:
    torch.manual_seed(0)
    net = SanaWMTransformer(dataclasses.replace(tiny(), softmax_every_n=2))  # blocks: G S G S
    perturb_all_parameters(net, 0)
    return net.eval()


def _chunk(inputs: dict[str, torch.Tensor], start: int, end: int, step: int) -> list[torch.Tensor]:
    """The forward's positional inputs for frames ``[start, end)``; each step its own latents and times."""
    gen = torch.Generator().manual_seed(100 * start + step)
    latents = inputs["latents"][:, :, start:end] + 0.1 * torch.randn(
        inputs["latents"][:, :, start:end].shape, generator=gen
    )
    t = torch.full_like(inputs["timestep"][:, :, start:end], 1000.0 - 200.0 * step)
    return [
        latents, t, inputs["text"], inputs["text_mask"],
        inputs["camera_conditions"][:, start:end], inputs["chunk_plucker"][:, :, start:end],
    ]  # fmt: skip


@torch.no_grad()
def _rollout(model, inputs, window: int, sink: bool, forward) -> tuple[list[torch.Tensor], StreamCache, list]:  # noqa: ANN001
    """Every forward's output, the final cache, and the cache's structure before each chunk."""
    cache = StreamCache(len(model.blocks), window=window, sink=sink)
    outs, structures = [], []
    for start, end in SEGMENTS:
        structures.append(cache_signature(cache))
        for step in range(STEPS):
            outs.append(forward(*_chunk(inputs, start, end, step), cache=cache, write_cache=False))
        outs.append(forward(*_chunk(inputs, start, end, STEPS), cache=cache, write_cache=True))
    return outs, cache, structures


@pytest.mark.parametrize(("window", "sink"), [(2, True), (2, False), (0, True)])
def test_replayed_stream_equals_the_eager_stream(model, window: int, sink: bool) -> None:
    inputs = random_inputs(1, 1, FRAMES, 2, 3)

    def eager(*args, cache, write_cache):  # noqa: ANN002, ANN202
        return model(*args, backend="torch", cache=cache, write_cache=write_cache)

    graphed = GraphedStreamForward(model, backend="torch", graph_factory=EmulatedGraph)
    expected, eager_cache, structures = _rollout(model, inputs, window, sink, eager)
    got, graphed_cache, _ = _rollout(model, inputs, window, sink, graphed)
    assert graphed.disabled is None
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # The cache the stream carries on is the eager one, tensor for tensor.
    assert cache_signature(graphed_cache) == cache_signature(eager_cache)
    assert (graphed_cache.chunks, graphed_cache.frames) == (eager_cache.chunks, eager_cache.frames)
    for a, b in zip(cache_tensors(graphed_cache), cache_tensors(eager_cache), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Chunks from ``steady`` on read caches of one structure (the window is full): recorded in the chunk after
    # (one read and one write graph), replayed from there on.
    chunks = len(SEGMENTS)
    steady = next(c for c in range(chunks) if all(s == structures[c] for s in structures[c:]))
    if window > 0:
        assert steady == (window if sink else window + 1)  # the first chunk is longer: 4 frames
        assert graphed.recorded == 2
        assert graphed.replayed == (chunks - steady - 1) * (STEPS + 1)
        assert graphed.eager == (steady + 1) * (STEPS + 1)
        # The stream's cache is the graphs' static copy itself: no second copy of the cache is kept.
        (recorded,) = graphed._shapes.values()
        assert [id(t) for t in cache_tensors(graphed_cache)] == [id(t) for t in recorded.cache]
    else:  # every chunk reads one more chunk than the last: no shape repeats, nothing recorded
        assert steady == chunks - 1
        assert graphed.recorded == graphed.replayed == 0


def test_a_failed_recording_leaves_the_stream_eager(model) -> None:
    inputs = random_inputs(1, 1, FRAMES, 2, 3)

    class Broken(EmulatedGraph):
        def capture(self, fn):  # noqa: ANN001, ANN202
            raise RuntimeError("operation not permitted when stream is capturing")

    def eager(*args, cache, write_cache):  # noqa: ANN002, ANN202
        return model(*args, backend="torch", cache=cache, write_cache=write_cache)

    graphed = GraphedStreamForward(model, backend="torch", graph_factory=Broken)
    expected, _, _ = _rollout(model, inputs, 2, True, eager)
    got, _, _ = _rollout(model, inputs, 2, True, graphed)
    assert graphed.disabled == "RuntimeError: operation not permitted when stream is capturing"
    assert graphed.replayed == 0
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
