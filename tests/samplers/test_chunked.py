"""Chunk-causal sampling: the official chunking rules by hand, and both samplers against loops written out
independently here."""

from __future__ import annotations

import pytest
import torch

from sana_wm.samplers.chunked import (
    autoregressive_segments,
    chunk_starts,
    read_window,
    sample_chunk_flow_euler,
    sample_self_forcing,
    student_sigmas,
)
from sana_wm.samplers.solvers import sample_euler


def test_chunk_starts_follow_the_official_examples() -> None:
    starts = chunk_starts(121, 3)
    assert starts[:3] == [0, 4, 7] and starts[-1] == 118 and len(starts) == 40
    assert chunk_starts(41, 3)[-1] == 37  # a 1-frame tail merges: the last chunk has 4 frames
    assert chunk_starts(4, 3) == [0]
    assert chunk_starts(10, 3, "uniform") == [0, 3, 6]  # frame 9 alone merges into the last chunk
    assert chunk_starts(10, 3, "first_frame") == [0, 1, 4, 7]
    assert chunk_starts(3, 3, "first_frame") == [0, 1]  # two starts: no merge
    with pytest.raises(ValueError, match="strategy"):
        chunk_starts(10, 3, "chunky")


def test_autoregressive_segments_let_the_first_chunk_absorb_the_remainder() -> None:
    assert autoregressive_segments(31) == [(0, 4), *((s, s + 3) for s in range(4, 31, 3))]
    assert len(autoregressive_segments(31)) == 10 and len(autoregressive_segments(121)) == 40
    assert autoregressive_segments(41)[0] == (0, 5) and autoregressive_segments(41)[-1] == (38, 41)
    assert autoregressive_segments(6) == [(0, 3), (3, 6)]
    with pytest.raises(ValueError, match="more than 3"):
        autoregressive_segments(3)


def test_read_window_keeps_the_sink_and_the_latest_chunks() -> None:
    assert [read_window(c, 2) for c in range(5)] == [[], [0], [0, 1], [0, 2], [0, 3]]
    assert [read_window(c, 2, sink=False) for c in range(5)] == [[], [0], [0, 1], [1, 2], [2, 3]]
    assert read_window(6, 3) == [0, 4, 5] and read_window(6, 3, sink=False) == [3, 4, 5]
    assert read_window(4, 0) == [0, 1, 2, 3] and read_window(4, -1) == [0, 1, 2, 3]


def test_student_sigmas() -> None:
    assert student_sigmas().tolist() == pytest.approx([1.0, 0.96, 0.889, 0.727, 0.0])
    assert student_sigmas([1000, 500, 0]).tolist() == [1.0, 0.5, 0.0]
    for bad in ("1000,960", "960,1000,0", "0"):
        with pytest.raises(ValueError):
            student_sigmas(bad)


def _toy_velocity(x: torch.Tensor, t_B1T: torch.Tensor) -> torch.Tensor:
    """A velocity that depends on the input, the per-frame timestep and the frame position."""
    frames = torch.arange(x.shape[2], dtype=torch.float32).view(1, 1, -1, 1, 1)
    return torch.tanh(x) * (1.0 + t_B1T.view(x.shape[0], 1, -1, 1, 1) / 1000.0) + 0.01 * frames


def test_staircase_with_one_chunk_is_plain_euler() -> None:
    x = torch.randn(2, 3, 5, 2, 2, generator=torch.Generator().manual_seed(0))
    sigmas = torch.tensor([1.0, 0.7, 0.4, 0.1, 0.0])
    cond = torch.tensor([1.0, 0, 0, 0, 0])
    x[:, :, 0] = 0.25
    got = sample_chunk_flow_euler(lambda p, t, s: _toy_velocity(p, t), x, sigmas, [0], cond_mask_T=cond)
    want = sample_euler(_toy_velocity, x, sigmas, cond_mask_T=cond)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_staircase_matches_a_naive_loop_and_feeds_started_chunks_only() -> None:
    x = torch.randn(1, 2, 10, 1, 2, generator=torch.Generator().manual_seed(1))
    sigmas = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])
    starts = chunk_starts(10, 3)  # [0, 4, 7]
    cond = torch.zeros(10)
    cond[0] = 1.0
    seen = []

    def model(prefix, t, active):
        seen.append((prefix.shape[2], list(active)))
        return _toy_velocity(prefix, t)

    got = sample_chunk_flow_euler(model, x, sigmas, starts, cond_mask_T=cond)

    # The rule written out: chunk i enters at step int(i * 4 / 3) = 0, 1, 2 and then takes its 4 steps.
    want = x.clone()
    bounds = [(0, 4), (4, 7), (7, 10)]
    enter = [0, 1, 2]
    for g in range(2 + 4):
        live = [i for i in range(3) if enter[i] <= g]
        end = bounds[live[-1]][1]
        level = torch.zeros(end)
        nxt = torch.zeros(end)
        for i in live:
            k = g - enter[i]
            if k < 4:
                level[bounds[i][0] : bounds[i][1]] = sigmas[k]
                nxt[bounds[i][0] : bounds[i][1]] = sigmas[k + 1]
        level[0] = nxt[0] = 0.0
        v = _toy_velocity(want[:, :, :end], (level * 1000).view(1, 1, -1))
        for f in range(end):
            if level[f] != nxt[f]:
                want[:, :, f] = want[:, :, f] + (nxt[f] - level[f]) * v[:, :, f]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert seen == [(4, [0]), (7, [0, 4]), (10, [0, 4, 7]), (10, [0, 4, 7]), (10, [0, 4, 7]), (10, [0, 4, 7])]
    assert torch.equal(got[:, :, 0], x[:, :, 0])


def test_self_forcing_rollout_matches_a_naive_loop_and_writes_each_cache_once() -> None:
    x = torch.randn(1, 2, 10, 1, 2, generator=torch.Generator().manual_seed(2))
    cond = torch.zeros(10)
    cond[0] = 1.0
    sigmas = student_sigmas()
    calls = []

    def model(chunk, t, start, end, write):
        calls.append((start, end, write, t[0, 0].tolist()))
        return _toy_velocity(chunk, t)

    rollout = sample_self_forcing(model, x.clone(), sigmas, autoregressive_segments(10), cond_mask_T=cond)
    chunks = [(index, chunk.clone()) for index, chunk in rollout]
    got = torch.cat([chunk for _, chunk in chunks], dim=2)
    assert [index for index, _ in chunks] == [0, 1, 2]

    want = x.clone()
    for start, end in [(0, 4), (4, 7), (7, 10)]:
        for k in range(4):
            level = torch.full((end - start,), float(sigmas[k]))
            if start == 0:
                level[0] = 0.0
            v = _toy_velocity(want[:, :, start:end], (level * 1000).view(1, 1, -1))
            want[:, :, start:end] = want[:, :, start:end] + (sigmas[k + 1] - sigmas[k]) * v
            want[:, :, 0] = x[:, :, 0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    writes = [(s, e) for s, e, write, _ in calls if write]
    assert writes == [(0, 4), (4, 7), (7, 10)] and len(calls) == 3 * 5
    assert calls[0][3] == pytest.approx([0.0, 1000.0, 1000.0, 1000.0])  # frame 0 is the clean image
    assert all(max(t) == 0.0 for s, e, write, t in calls if write)
