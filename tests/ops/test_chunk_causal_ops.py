"""Chunk-causal GDN scans and short conv: every backend against the reference loops, one chunk equals the
bidirectional op, and a stream of chunks carrying the state / tail equals one pass."""

from __future__ import annotations

import pytest
import torch

from sana_wm.ops.gdn import cam_bidirectional, cam_chunk_causal, gdn_bidirectional, gdn_chunk_causal
from sana_wm.ops.short_conv import bidirectional_short_conv, chunk_causal_short_conv

STARTS = [0, 4]  # chunks [0, 4) and [4, 7)


def _gdn_inputs(seed: int = 0, frames: int = 7) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    shape = (2, 2, frames, 5, 8)
    q, k_, v = (
        torch.rand(shape, generator=gen),
        0.3 * torch.rand(shape, generator=gen),
        torch.randn(shape, generator=gen),
    )
    q_rot, k_rot = torch.randn(shape, generator=gen), 0.3 * torch.randn(shape, generator=gen)
    beta = torch.rand(shape[:4], generator=gen)
    decay = 0.5 + 0.5 * torch.rand(shape[:3], generator=gen)
    return q, k_, v, q_rot, k_rot, beta, decay


def _part(x: tuple[torch.Tensor, ...], start: int, end: int) -> tuple[torch.Tensor, ...]:
    return tuple(t[:, :, start:end] for t in x)


def _backends(request: pytest.FixtureRequest, backend: str) -> None:
    if backend == "triton":
        request.getfixturevalue("triton_interpreter")


@pytest.mark.parametrize("backend", ["reference", "torch", "triton"])
def test_gdn_chunk_causal(backend: str, request: pytest.FixtureRequest) -> None:
    _backends(request, backend)
    x = _gdn_inputs()
    one_chunk, _ = gdn_chunk_causal(*x, eps=1e-8, backend=backend)
    assert (one_chunk - gdn_bidirectional(*x, eps=1e-8, backend="reference")).abs().max() <= 1e-5
    full, state = gdn_chunk_causal(*x, eps=1e-8, starts=STARTS, backend=backend)
    want, want_state = gdn_chunk_causal(*x, eps=1e-8, starts=STARTS, backend="reference")
    assert (full - want).abs().max() <= 1e-5 * want.abs().max()
    assert (state.kv - want_state.kv).abs().max() <= 1e-5 and (state.z - want_state.z).abs().max() <= 1e-5
    first, carried = gdn_chunk_causal(*_part(x, 0, 4), eps=1e-8, backend=backend)
    second, end_state = gdn_chunk_causal(*_part(x, 4, 7), eps=1e-8, initial_state=carried, backend=backend)
    assert (torch.cat([first, second], dim=2) - full).abs().max() <= 1e-5 * want.abs().max()
    assert (end_state.kv - state.kv).abs().max() <= 1e-5
    # the chunk boundary matters: the first chunk does not see the second one
    assert (full[:, :, :4] - one_chunk[:, :, :4]).abs().max() > 1e-3


@pytest.mark.parametrize("backend", ["reference", "torch", "triton"])
def test_cam_chunk_causal(backend: str, request: pytest.FixtureRequest) -> None:
    _backends(request, backend)
    _, _, v, q, k, beta, decay = _gdn_inputs(1)
    one_chunk, _ = cam_chunk_causal(q, k, v, beta, decay, backend=backend)
    assert (one_chunk - cam_bidirectional(q, k, v, beta, decay, backend="reference")).abs().max() <= 1e-5
    full, state = cam_chunk_causal(q, k, v, beta, decay, starts=STARTS, backend=backend)
    want, want_state = cam_chunk_causal(q, k, v, beta, decay, starts=STARTS, backend="reference")
    assert (full - want).abs().max() <= 1e-5 * want.abs().max()
    assert (state - want_state).abs().max() <= 1e-5
    parts = [(x[:, :, :4], x[:, :, 4:]) for x in (q, k, v, beta, decay)]
    first, carried = cam_chunk_causal(*(p[0] for p in parts), backend=backend)
    second, _ = cam_chunk_causal(*(p[1] for p in parts), initial_state=carried, backend=backend)
    assert (torch.cat([first, second], dim=2) - full).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("backend", ["reference", "torch", "triton"])
def test_chunk_causal_short_conv(backend: str, request: pytest.FixtureRequest) -> None:
    _backends(request, backend)
    gen = torch.Generator().manual_seed(2)
    x, weight = torch.randn(2, 10, 3, 4, generator=gen), torch.randn(4, 4, generator=gen)
    assert (
        chunk_causal_short_conv(x, weight, backend=backend)
        - bidirectional_short_conv(x, weight, backend="reference")
    ).abs().max() <= 1e-5
    starts = [0, 4, 7]
    full = chunk_causal_short_conv(x, weight, starts=starts, backend=backend)
    # written out: y[t] = sum_j w[j] x[t-3+j] (any chunk, 0 before 0) + sum_{d>=1} w[3-d] x[t+d] (same chunk)
    want = torch.zeros_like(x)
    chunk_end = [4] * 4 + [7] * 3 + [10] * 3
    for t in range(10):
        for j in range(4):
            if t - 3 + j >= 0:
                want[:, t] += weight[:, j] * x[:, t - 3 + j]
        for d in range(1, 4):
            if t + d < chunk_end[t]:
                want[:, t] += weight[:, 3 - d] * x[:, t + d]
    assert (full - want).abs().max() <= 1e-5
    pieces = [
        chunk_causal_short_conv(x[:, :4], weight, backend=backend),
        chunk_causal_short_conv(x[:, 4:7], weight, tail_BKSC=x[:, 1:4], backend=backend),
        chunk_causal_short_conv(x[:, 7:], weight, tail_BKSC=x[:, 4:7], backend=backend),
    ]
    assert (torch.cat(pieces, dim=1) - full).abs().max() <= 1e-5
