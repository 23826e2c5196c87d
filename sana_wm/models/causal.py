"""Chunk-causal execution of the transformer: which frames form chunks, what each chunk sees, and the typed
cache a streamed generation carries from one chunk to the next.

Shape letters: docs/conventions.md (``K`` taps of a short conv minus one, ``L`` frames of a tail).

The chunk-causal variant (the official ``SANA-WM_chunk_causal`` teacher and the streaming student) has the
bidirectional model's weights and changes only what each token sees. Latent frames form chunks (3 frames,
the first chunk holding the image frame too); a chunk sees itself and earlier chunks, never later ones:

- GDN blocks: the forward recurrence runs over every frame (its state summarises all earlier chunks), the
  backward one inside the chunk; the short conv on K reads earlier frames across chunks and later ones inside
  the chunk only.
- Softmax blocks: a chunk's queries attend to its own keys and to those of the earlier chunks its *window*
  allows (``window`` W = ``num_cached_blocks``: the latest W − 1 chunks plus, with the sink, chunk 0;
  W <= 0: every earlier chunk). Keys are rotated at their absolute frame positions.
- FFN temporal conv: the previous frame is read across chunks, the next one inside the chunk only.
- RoPE: absolute frame positions (a streamed chunk starting at frame 40 is rotated as frames 40, 41, ...).

A whole-prefix forward with a :class:`ChunkLayout` (the teacher, training) and a stream of one-chunk
forwards that read and write a :class:`StreamCache` compute the same thing: the cache holds exactly what
later chunks read, the GDN states after the latest chunk, the last input frames of the short convs and the
FFN, and the softmax blocks' keys/values of the chunks still inside some future window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sana_wm.errors import InputError
from sana_wm.ops.gdn import GDNState
from sana_wm.samplers.chunked import read_window


@dataclass(frozen=True)
class ChunkLayout:
    """The chunks of one forward's latent frames and what earlier chunks they read.

    Attributes:
        starts: start frame of each chunk in this forward, the first 0.
        first_chunk: stream index of this forward's first chunk (earlier ones are in the cache).
        frame_offset: absolute frame index of this forward's frame 0 (RoPE positions).
        window: ``num_cached_blocks`` of the softmax blocks; <= 0 reads every earlier chunk.
        sink: chunk 0 stays readable once it would leave the window (with ``window`` > 0).
    """

    starts: tuple[int, ...] = (0,)
    first_chunk: int = 0
    frame_offset: int = 0
    window: int = 0
    sink: bool = True

    def __post_init__(self) -> None:
        starts = tuple(int(s) for s in self.starts)
        if not starts or starts[0] != 0 or any(a >= b for a, b in zip(starts, starts[1:], strict=False)):
            raise InputError(f"chunk starts: expected increasing frame indices from 0, got {list(starts)}")
        if self.first_chunk < 0 or self.frame_offset < 0:
            raise InputError("chunk layout: first_chunk and frame_offset must be >= 0")
        object.__setattr__(self, "starts", starts)

    def bounds(self, num_frames: int) -> list[tuple[int, int]]:
        """``(start, end)`` frames of each chunk of a ``num_frames`` forward."""
        if self.starts[-1] >= num_frames:
            raise InputError(f"chunk starts {list(self.starts)} do not fit {num_frames} latent frames")
        return list(zip(self.starts, [*self.starts[1:], num_frames], strict=True))

    def reads(self, local: int) -> list[int]:
        """Stream indices of the earlier chunks whose softmax keys chunk ``local`` of this forward reads."""
        return read_window(self.first_chunk + local, self.window, sink=self.sink)

    @property
    def reads_whole_prefix(self) -> bool:
        """Whether every chunk reads all earlier chunks and there is no cache before it (one causal mask)."""
        return self.window <= 0 and self.first_chunk == 0


def earlier_keys(
    layout: ChunkLayout,
    local: int,
    grid: tuple[int, int, int],
    k_BNME: torch.Tensor,
    v_BNME: torch.Tensor,
    cached: dict[int, tuple[torch.Tensor, torch.Tensor]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Keys and values of the earlier chunks that chunk ``local`` of a forward over ``grid`` reads, oldest
    first: slices of this forward's ``k_BNME``/``v_BNME`` or entries of ``cached`` (stream index → k, v)."""
    tokens = grid[1] * grid[2]
    bounds = layout.bounds(grid[0])
    keys, values = [], []
    for index in layout.reads(local):
        if index >= layout.first_chunk:
            start, end = bounds[index - layout.first_chunk]
            keys.append(k_BNME[:, :, start * tokens : end * tokens])
            values.append(v_BNME[:, :, start * tokens : end * tokens])
        elif index in cached:
            keys.append(cached[index][0])
            values.append(cached[index][1])
        else:
            raise InputError(
                f"stream cache: chunk {index} is not cached (the cache and the forward do not match)"
            )
    return keys, values


@dataclass
class ChunkKeys:
    """A softmax block's keys and values of one chunk, as later chunks read them: main branch post-RoPE,
    camera branch in ray space, each ``(B, N, M_chunk, E)`` in the attention's dtype."""

    k: torch.Tensor
    v: torch.Tensor
    k_cam: torch.Tensor
    v_cam: torch.Tensor


@dataclass
class BlockCache:
    """What one block carries to the next chunk.

    Attributes:
        gdn: main-branch GDN state after the latest chunk (GDN blocks).
        cam_state: camera-branch GDN state ``(B, N, V, E)`` (GDN blocks).
        conv_k_tail, conv_k_cam_tail: the last ``K`` input frames of the short convs ``(B, K, S, D)``.
        ffn_tail: the last frame(s) of the FFN's temporal conv input ``(B, L, S, D)``.
        keys: softmax blocks: stream chunk index → its keys/values, for chunks some later window reads.
    """

    gdn: GDNState | None = None
    cam_state: torch.Tensor | None = None
    conv_k_tail: torch.Tensor | None = None
    conv_k_cam_tail: torch.Tensor | None = None
    ffn_tail: torch.Tensor | None = None
    keys: dict[int, ChunkKeys] = field(default_factory=dict)

    def tensors(self) -> list[torch.Tensor]:
        out = [
            t
            for t in (self.cam_state, self.conv_k_tail, self.conv_k_cam_tail, self.ffn_tail)
            if t is not None
        ]
        if self.gdn is not None:
            out += [self.gdn.kv, self.gdn.z]
        for chunk in self.keys.values():
            out += [chunk.k, chunk.v, chunk.k_cam, chunk.v_cam]
        return out


class StreamCache:
    """One streamed generation's cache: a :class:`BlockCache` per block plus where the stream stands.

    Create one per generation (``StreamCache(depth, window=2, sink=True)``) and pass it to every
    forward of that generation (``model(..., cache=cache, write_cache=...)``). A forward reads the cache
    as it is; with ``write_cache=True`` it then stores its own chunk (the clean, timestep-0 pass of the
    streaming sampler) and the stream advances by that chunk. Memory stays bounded: only the chunks a future
    window can read are kept.
    """

    def __init__(self, depth: int, *, window: int = 2, sink: bool = True) -> None:
        self.blocks = [BlockCache() for _ in range(depth)]
        self.window = window
        self.sink = sink
        self.chunks = 0  # chunks written so far
        self.frames = 0  # latent frames written so far

    def layout(self, starts: Sequence[int] = (0,)) -> ChunkLayout:
        """The layout of the next forward: its chunks continue the stream."""
        return ChunkLayout(
            tuple(starts),
            first_chunk=self.chunks,
            frame_offset=self.frames,
            window=self.window,
            sink=self.sink,
        )

    def kept_chunks(self) -> set[int]:
        """Stream indices of written chunks that a later chunk's softmax window can still read."""
        # Later windows never reach back further than the next chunk's (only the sink stays).
        return set(read_window(self.chunks, self.window, sink=self.sink))

    def advance(self, chunks: int, frames: int) -> None:
        """Record ``chunks`` written chunks of ``frames`` frames in all, and drop keys no window reads."""
        self.chunks += chunks
        self.frames += frames
        keep = self.kept_chunks()
        for block in self.blocks:
            for index in [i for i in block.keys if i not in keep]:
                del block.keys[index]

    def nbytes(self) -> int:
        """Bytes held by the cache's tensors."""
        return sum(t.numel() * t.element_size() for block in self.blocks for t in block.tensors())
