"""CUDA graphs of the streamed stage-1 forwards.

A streamed chunk is five forwards of a few thousand tokens (four Euler steps and the cache-write pass). In
eager PyTorch the host spends longer launching their kernels than the GPU spends running them. From the
chunk whose softmax window is full on (the third, with the default window of 2), every chunk's forwards have
the same shapes and read a cache of the same structure: sink chunk, latest chunk(s), GDN states, conv and
FFN tails. So each kind of forward (a read-only step, the cache-write pass) is recorded once as a CUDA graph
and replayed:

1. the forward's inputs and its RoPE tables (at the chunk's frame offset) are copied into static buffers;
   so is the cache, once, when the shape is recorded;
2. the graph replays on the current stream;
3. the velocity is copied out; after the write pass, the chunk's new cache entries are copied into the
   static buffers (the kept keys move up a slot, the new chunk's take the last), and the stream's
   :class:`~sana_wm.models.causal.StreamCache` holds those buffers, exactly as the eager forward would have
   filled it: one copy of the cache, which the graphs read in place.

A forward shape runs eagerly in the first chunk it appears in (which also compiles and tunes the Triton
kernels; a shape of one chunk only, such as the second chunk's before the window is full, is never recorded),
is recorded in the next (after one more eager warm-up on the capture stream) and replayed from then on; the
read and write graphs of one shape share a memory pool and the static copy of the cache. If recording
fails, the forwards stay eager and :attr:`GraphedStreamForward.disabled` says why.

The graph itself is behind a small interface (``capture(fn)`` → outputs, ``replay()``): on a CPU the tests use
:class:`EmulatedGraph`, which re-runs ``fn`` into the recorded outputs, to check that replaying with copied
caches equals the eager stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from sana_wm.models.causal import BlockCache, ChunkKeys, StreamCache
from sana_wm.ops.gdn import GDNState
from sana_wm.ops.rope import rope_tables
from sana_wm.samplers.chunked import read_window

log = logging.getLogger(__name__)

_FIELDS = ("cam_state", "conv_k_tail", "conv_k_cam_tail", "ffn_tail")


class Graph(Protocol):
    def capture(self, fn: Callable[[], list[Tensor]]) -> list[Tensor]: ...

    def replay(self) -> None: ...


class CudaGraph:
    """A ``torch.cuda.CUDAGraph`` recorded on its own stream, in a pool it may share with other graphs."""

    def __init__(self, pool: Any = None) -> None:
        self.graph = torch.cuda.CUDAGraph()
        self.pool = pool

    def capture(self, fn: Callable[[], list[Tensor]]) -> list[Tensor]:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()  # warm-up on the capture stream (workspaces, lazy initialisation)
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(self.graph, pool=self.pool, stream=stream):
            outputs = fn()
        self.pool = self.graph.pool()
        return outputs

    def replay(self) -> None:
        self.graph.replay()


class EmulatedGraph:
    """Stands in for a CUDA graph on any device: ``replay`` re-runs ``fn`` and copies its results into the
    tensors ``capture`` returned (what a replayed graph does to its outputs); Python side effects of ``fn``
    must not matter, as they would not happen in a real replay."""

    def __init__(self, pool: Any = None) -> None:
        self.pool = pool
        self.fn: Callable[[], list[Tensor]] | None = None
        self.outputs: list[Tensor] = []

    def capture(self, fn: Callable[[], list[Tensor]]) -> list[Tensor]:
        self.fn = fn
        self.outputs = fn()
        return self.outputs

    def replay(self) -> None:
        assert self.fn is not None
        for recorded, fresh in zip(self.outputs, self.fn(), strict=True):
            recorded.copy_(fresh)


def _block_tensors(block: BlockCache) -> list[Tensor]:
    """A block cache's tensors in a fixed order: GDN state, the other fields, then keys by chunk index."""
    out = [] if block.gdn is None else [block.gdn.kv, block.gdn.z]
    out += [getattr(block, name) for name in _FIELDS if getattr(block, name) is not None]
    for index in sorted(block.keys):
        chunk = block.keys[index]
        out += [chunk.k, chunk.v, chunk.k_cam, chunk.v_cam]
    return out


def cache_tensors(cache: StreamCache) -> list[Tensor]:
    """Every tensor the cache holds, in the order :func:`cache_signature` describes."""
    return [t for block in cache.blocks for t in _block_tensors(block)]


def cache_signature(cache: StreamCache) -> tuple[Any, ...]:
    """What a graph recorded on ``cache`` depends on: which fields each block holds, how many chunks of keys,
    every tensor's shape and dtype, and the window rule."""
    blocks = tuple(
        (
            block.gdn is not None,
            tuple(getattr(block, name) is not None for name in _FIELDS),
            len(block.keys),
        )
        for block in cache.blocks
    )
    shapes = tuple((tuple(t.shape), t.dtype) for t in cache_tensors(cache))
    return blocks, shapes, cache.window, cache.sink


def _shadow(cache: StreamCache, tensors: list[Tensor]) -> StreamCache:
    """A cache with ``cache``'s structure and counters whose tensors are ``tensors`` (in
    :func:`cache_tensors` order)."""
    shadow = StreamCache(len(cache.blocks), window=cache.window, sink=cache.sink)
    shadow.chunks, shadow.frames = cache.chunks, cache.frames
    it = iter(tensors)
    for block, mirror in zip(cache.blocks, shadow.blocks, strict=True):
        if block.gdn is not None:
            mirror.gdn = GDNState(next(it), next(it))
        for name in _FIELDS:
            if getattr(block, name) is not None:
                setattr(mirror, name, next(it))
        for index in sorted(block.keys):
            mirror.keys[index] = ChunkKeys(next(it), next(it), next(it), next(it))
    return shadow


@dataclass
class _Recorded:
    """One forward shape: static inputs, the cache's static copy, and a graph per pass kind."""

    inputs: list[Tensor]
    cache: list[Tensor]
    template: StreamCache  # structure and counters at recording time (tensors: ``cache``)
    graphs: dict[bool, tuple[Graph, list[Tensor]]]
    pool: Any = None
    loaded: tuple[int, int] | None = None  # (id, chunks) of the stream cache last copied in


class GraphedStreamForward:
    """Runs ``model``'s streamed one-chunk forwards through recorded graphs once shapes repeat.

    Call it like the transformer with a cache (``(x, t, text, mask, camera, plucker, cache=, write_cache=)``).
    ``graph_factory`` makes the graphs (default :class:`CudaGraph`; tests pass :class:`EmulatedGraph`).
    Counters: ``eager``, ``recorded``, ``replayed`` forwards.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        backend: str,
        graph_factory: Callable[[Any], Graph] | None = None,
    ) -> None:
        self.model = model
        self.backend = backend
        self.graph_factory = graph_factory or CudaGraph
        self.disabled: str | None = None
        self.eager = self.recorded = self.replayed = 0
        self._seen: dict[tuple[Any, ...], int] = {}  # forward key → chunk it was first seen in
        self._shapes: dict[tuple[Any, ...], _Recorded] = {}

    def __call__(
        self,
        x: Tensor,
        t: Tensor,
        text: Tensor,
        mask: Tensor,
        camera: Tensor,
        plucker: Tensor,
        *,
        cache: StreamCache,
        write_cache: bool,
    ) -> Tensor:
        grid = tuple(x.shape[2:])
        rope = rope_tables(*grid, self.model.config.head_dim, device=x.device, frame_offset=cache.frames)
        inputs = [x, t, text, mask, camera, plucker, *rope]
        shape = (tuple((tuple(a.shape), a.dtype) for a in inputs), cache_signature(cache))
        key = (*shape, write_cache)
        first_chunk = self._seen.setdefault(key, cache.chunks)
        if self.disabled is not None or cache.chunks == first_chunk:  # a shape seen in one chunk only: eager
            self.eager += 1
            return self._forward(inputs, cache, write_cache)
        recorded = self._shapes.get(shape)
        if recorded is None or write_cache not in recorded.graphs:
            try:
                recorded = self._record(shape, inputs, cache, write_cache)
            except Exception as err:  # noqa: BLE001 - any capture failure: stay eager, say why
                self.disabled = f"{type(err).__name__}: {err}"
                log.warning("stream: CUDA graphs off, the forwards stay eager (%s)", self.disabled)
                self.eager += 1
                return self._forward(inputs, cache, write_cache)
            self.recorded += 1
        self._load(recorded, inputs, cache)
        graph, outputs = recorded.graphs[write_cache]
        graph.replay()
        self.replayed += 1
        if write_cache:
            self._store(recorded, outputs[1:], cache, frames=grid[0])
        return outputs[0].clone()

    def _forward(self, inputs: list[Tensor], cache: StreamCache, write: bool) -> Tensor:
        x, t, text, mask, camera, plucker, cos, sin = inputs
        return self.model(
            x, t, text, mask, camera, plucker,
            backend=self.backend, cache=cache, write_cache=write, rope=(cos, sin),
        )  # fmt: skip

    def _record(
        self, shape: tuple[Any, ...], inputs: list[Tensor], cache: StreamCache, write: bool
    ) -> _Recorded:
        recorded = self._shapes.get(shape)
        if recorded is None:
            self._shapes.clear()  # one shape at a time: the stream has moved on from the others
            statics = [t.clone() for t in cache_tensors(cache)]
            recorded = _Recorded([a.clone() for a in inputs], statics, _shadow(cache, statics), graphs={})
        self._load(recorded, inputs, cache)

        def run() -> list[Tensor]:
            # A fresh cache object over the static tensors: the forward's Python-side edits stay here.
            shadow = _shadow(recorded.template, recorded.cache)
            out = self._forward(recorded.inputs, shadow, write)
            if not write:
                return [out]
            return [out, *self._written(shadow, recorded.template.chunks)]

        graph = self.graph_factory(recorded.pool)
        outputs = graph.capture(run)
        if write and len(outputs) - 1 != _written_count(recorded.template):
            raise RuntimeError("the write pass changed the cache's structure (not a steady-state chunk)")
        recorded.pool = getattr(graph, "pool", None)
        recorded.graphs[write] = (graph, outputs)
        self._shapes[shape] = recorded
        return recorded

    @staticmethod
    def _written(shadow: StreamCache, chunk: int) -> list[Tensor]:
        """What a write pass leaves in ``shadow`` that the stream needs: every block's GDN state and other
        fields, and the keys of the written chunk ``chunk``."""
        out: list[Tensor] = []
        for block in shadow.blocks:
            out += [] if block.gdn is None else [block.gdn.kv, block.gdn.z]
            out += [getattr(block, name) for name in _FIELDS if getattr(block, name) is not None]
            if chunk in block.keys:
                keys = block.keys[chunk]
                out += [keys.k, keys.v, keys.k_cam, keys.v_cam]
        return out

    @staticmethod
    def _load(recorded: _Recorded, inputs: list[Tensor], cache: StreamCache) -> None:
        for static, value in zip(recorded.inputs, inputs, strict=True):
            static.copy_(value)
        state = (id(cache), cache.chunks)
        if recorded.loaded != state:
            for static, value in zip(recorded.cache, cache_tensors(cache), strict=True):
                _fill(static, value)  # after a replayed write pass the cache holds the statics themselves
            recorded.loaded = state

    @staticmethod
    def _store(recorded: _Recorded, written: list[Tensor], cache: StreamCache, *, frames: int) -> None:
        """Put a replayed write pass's outputs into the static buffers and let the stream's cache hold those
        (one copy of the cache, which the graphs read in place), then advance it by one chunk.

        Keys move by position: the chunks the next window reads, in order, take the static slots in order
        (a kept chunk only moves to an earlier slot, so copying in ascending order never overwrites a slot
        before it is read); the written chunk's keys fill the last."""
        outputs = iter(written)
        statics = iter(recorded.cache)
        keep = sorted(read_window(cache.chunks + 1, cache.window, sink=cache.sink))
        for block, shape in zip(cache.blocks, recorded.template.blocks, strict=True):
            if shape.gdn is not None:
                block.gdn = GDNState(*(_fill(next(statics), next(outputs)) for _ in range(2)))
            for name in _FIELDS:
                if getattr(shape, name) is not None:
                    setattr(block, name, _fill(next(statics), next(outputs)))
            if not shape.keys:
                continue
            old = sorted(block.keys)
            slots = [[next(statics) for _ in range(4)] for _ in old]
            if len(keep) != len(old):
                raise RuntimeError("stream graphs: the window's size changed in a recorded shape")
            new_keys = {}
            for position, index in enumerate(keep):
                if index == cache.chunks:
                    source = [next(outputs) for _ in range(4)]
                else:
                    source = slots[old.index(index)]
                    assert old.index(index) >= position
                new_keys[index] = ChunkKeys(
                    *(_fill(t, v) for t, v in zip(slots[position], source, strict=True))
                )
            block.keys = new_keys
        if next(outputs, None) is not None or next(statics, None) is not None:
            raise RuntimeError("stream graphs: the cache's outputs do not match its structure")
        cache.advance(1, frames)


def _fill(static: Tensor, value: Tensor) -> Tensor:
    """``static`` holding ``value`` (copied unless it is already the same tensor)."""
    if static is not value:
        static.copy_(value)
    return static


def _written_count(template: StreamCache) -> int:
    """Tensors a write pass leaves for a cache of ``template``'s structure (see ``_written``)."""
    count = 0
    for block in template.blocks:
        count += 2 * (block.gdn is not None) + sum(getattr(block, n) is not None for n in _FIELDS)
        count += 4 * bool(block.keys)
    return count
