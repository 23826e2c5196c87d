"""The training objective: chunk layouts, chunk-timestep modes, conditioning draws, noising and the loss."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch

from sana_wm.errors import InputError
from sana_wm.train.losses import (
    LossConfig,
    chunk_starts,
    clean_prefix_timesteps,
    flow_inputs,
    flow_loss,
    frame_timesteps,
    incremental_timesteps,
    last_chunk_anchor_timesteps,
    logit_normal_t,
    monotone_through_anchor,
    same_t_timesteps,
    sample_draws,
)


@pytest.mark.parametrize(
    ("num_frames", "size", "strategy", "expected"),
    [
        (121, 3, "first_chunk_plus_one", [0, *range(4, 119, 3)]),  # 40 chunks, the official T=121 layout
        (41, 3, "first_chunk_plus_one", [0, *range(4, 38, 3)]),  # tail 40 merged: last chunk 37..40
        (4, 3, "first_chunk_plus_one", [0]),
        (10, 3, "uniform", [0, 3, 6]),
        (9, 3, "uniform", [0, 3, 6]),
        (10, 3, "first_frame", [0, 1, 4, 7]),
        (9, 3, "first_frame", [0, 1, 4]),
        (5, 1, "first_chunk_plus_one", [0, 2, 3, 4]),
        (7, None, "first_chunk_plus_one", [0]),
    ],
)
def test_chunk_starts(num_frames, size, strategy, expected):
    assert chunk_starts(num_frames, size, strategy) == expected


def test_chunk_starts_121_has_40_chunks():
    assert len(chunk_starts(121, 3, "first_chunk_plus_one")) == 40


def _enumerate(num_chunks, anchor, value, num_values):
    return [
        s
        for s in itertools.product(range(num_values), repeat=num_chunks)
        if s[anchor] == value and all(a <= b for a, b in itertools.pairwise(s))
    ]


@pytest.mark.parametrize(("num_chunks", "anchor", "value"), [(4, 1, 2), (3, 2, 3), (3, 0, 1)])
def test_monotone_sequences_are_uniform(num_chunks, anchor, value):
    """Every non-decreasing sequence through the anchor is equally likely (brute-force enumeration)."""
    num_values = 5
    allowed = _enumerate(num_chunks, anchor, value, num_values)
    rng = np.random.default_rng(0)
    draws = 1000 * len(allowed)
    counts = Counter(
        tuple(monotone_through_anchor(num_chunks, anchor, value, rng, num_values)) for _ in range(draws)
    )
    assert set(counts) == set(allowed)
    chi2 = sum((c - 1000) ** 2 / 1000 for c in counts.values())
    # chi-square with len-1 degrees of freedom: mean len-1, std sqrt(2(len-1)); allow 5 std.
    dof = len(allowed) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)


def _fixed(value):
    return lambda rng: value


STARTS = [0, 4, 7, 10, 13]  # T = 16, chunk size 3, first_chunk_plus_one


def _chunks(t_T):
    return [int(t_T[s]) for s in STARTS]


def test_modes_structure():
    for seed in range(200):
        rng = np.random.default_rng(seed)
        same = same_t_timesteps(16, STARTS, rng, _fixed(613))
        assert (same == 613).all()
        for fn in (incremental_timesteps, last_chunk_anchor_timesteps, clean_prefix_timesteps):
            t_T = fn(16, STARTS, rng, _fixed(613))
            assert t_T.shape == (16,) and t_T.dtype == np.int64
            assert ((t_T >= 0) & (t_T < 1000)).all()
            # constant inside every chunk, non-decreasing across chunks
            bounds = [*STARTS, 16]
            for k in range(len(STARTS)):
                assert (t_T[bounds[k] : bounds[k + 1]] == t_T[bounds[k]]).all()
            chunks = _chunks(t_T)
            assert chunks == sorted(chunks)
            if fn is incremental_timesteps:
                assert 613 in chunks
            else:
                assert chunks[-1] == 613
            if fn is clean_prefix_timesteps:
                assert chunks[0] == 0


def test_anchor_and_prefix_length_are_uniform():
    """With base 999 every chunk from the anchor on is 999 (and an earlier one only by a rare chance), so the
    first 999 marks the anchor; the zero chunks of clean_prefix mark its prefix length L in [1, K-1]."""
    anchors, prefixes = Counter(), Counter()
    for seed in range(3000):
        chunks = _chunks(incremental_timesteps(16, STARTS, np.random.default_rng(seed), _fixed(999)))
        anchors[chunks.index(999)] += 1
        chunks = _chunks(clean_prefix_timesteps(16, STARTS, np.random.default_rng(seed), _fixed(999)))
        prefixes[chunks.count(0)] += 1
    assert sorted(anchors) == [0, 1, 2, 3, 4] and sorted(prefixes) == [1, 2, 3, 4]
    for count in anchors.values():
        assert abs(count / 3000 - 0.2) < 0.04, anchors
    for count in prefixes.values():
        assert abs(count / 3000 - 0.25) < 0.04, prefixes


def test_logit_normal_t_formula():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(100):
        z = b.standard_normal()
        assert logit_normal_t(a) == int(1000 / (1 + math.exp(-z)))
    t = np.array([logit_normal_t(np.random.default_rng(i), 0.0, 1.0) for i in range(4000)])
    assert abs(np.median(t) - 500) < 20 and abs(t.mean() - 500) < 15


def test_frame_timesteps_without_chunks_is_one_draw():
    cfg = LossConfig(chunk_size=None)
    for seed in range(20):
        t_T = frame_timesteps(7, cfg, np.random.default_rng(seed))
        assert (t_T == t_T[0]).all()


def test_conditioning_frequencies():
    cfg = LossConfig()
    draws = [sample_draws(3, cfg, np.random.default_rng(seed)) for seed in range(4000)]
    image = np.mean([d[1] for d in draws])
    caption = np.mean([d[2] for d in draws])
    assert abs(image - 0.9) < 0.02 and abs(caption - 0.1) < 0.02
    assert all(d[0][0] == 0 for d in draws if d[1])


def test_shift_matches_official_examples():
    """Official shift 9.95: t = 100 -> sigma 0.525, t = 500 -> 0.909 (reference doc, 3 decimals)."""
    cfg = LossConfig(flow_shift=9.95, chunk_size=None, image_condition_prob=0.0, caption_dropout_prob=0.0)
    x0 = torch.zeros(1, 1, 2, 1, 1)
    for t, sigma in ((100, 0.525), (500, 0.909)):
        cfg_t = dataclasses.replace(cfg, timestep_sampling="fixed", fixed_t=t)
        out = flow_inputs(x0, torch.zeros(1, 1, 1), torch.zeros(1, 1), cfg_t, [np.random.default_rng(0)])
        assert out.timestep[0, 0, 0].item() / 1000 == pytest.approx(sigma, abs=5e-4)


def _noised(cfg, seed, x0, text, null):
    return flow_inputs(x0, text, null, cfg, [np.random.default_rng([seed, b]) for b in range(len(x0))])


def test_flow_inputs_compose_the_path():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 4, 2, 2, generator=gen)
    text = torch.randn(2, 5, 6, generator=gen)
    null = torch.full((5, 6), 7.0)
    cfg = LossConfig(chunk_size=1, image_condition_prob=1.0, caption_dropout_prob=1.0)
    out = _noised(cfg, 3, x0, text, null)
    for b in range(2):
        rng = np.random.default_rng([3, b])
        t_T, image_condition, dropped = sample_draws(4, cfg, rng)
        assert image_condition and dropped
        noise_gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        noise = torch.randn(3, 4, 2, 2, generator=noise_gen)
        u = torch.from_numpy(t_T).double() / 1000
        sigma = (9.95 * u / (1 + 8.95 * u)).float()
        expected = (1 - sigma[None, :, None, None]) * x0[b] + sigma[None, :, None, None] * noise
        torch.testing.assert_close(out.noisy[b], expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(out.target[b], noise - x0[b], rtol=0, atol=0)
        torch.testing.assert_close(out.timestep[b, 0], sigma * 1000)
        assert torch.equal(out.noisy[b, :, 0], x0[b, :, 0])  # the conditioning frame is exactly clean
        assert out.timestep[b, 0, 0] == 0
        assert out.loss_mask[b].tolist() == [0.0, 1.0, 1.0, 1.0]
        assert torch.equal(out.text[b], null)
    kept = _noised(LossConfig(image_condition_prob=0.0, caption_dropout_prob=0.0), 3, x0, text, null)
    assert torch.equal(kept.text, text)
    assert kept.loss_mask.min() == 1.0 and (kept.timestep[:, 0, 0] > 0).all()


def test_mask_clean_frames():
    x0 = torch.zeros(1, 1, 16, 1, 1)
    cfg = LossConfig(
        chunk_size=3, chunk_mode="clean_prefix", image_condition_prob=0.0, mask_clean_frames=True
    )
    out = _noised(cfg, 1, x0, torch.zeros(1, 1, 1), torch.zeros(1, 1))
    assert torch.equal(out.loss_mask[0], (out.timestep[0, 0] > 0).float())
    assert out.loss_mask[0, 0] == 0


def test_flow_loss_by_hand():
    target = torch.zeros(2, 1, 2, 1, 2)
    target[0, 0, 0] = torch.tensor([1.0, 3.0])  # frame err 5
    target[0, 0, 1] = torch.tensor([2.0, 2.0])  # 4
    target[1, 0, 0] = torch.tensor([1.0, 1.0])  # 1
    target[1, 0, 1] = torch.tensor([0.0, 2.0])  # 2
    mask = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert flow_loss(torch.zeros_like(target), target, mask).item() == pytest.approx((4 + 1.5) / 2)
    none = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert flow_loss(torch.zeros_like(target), target, none).item() == pytest.approx(1.5 / 2)


def test_bad_settings():
    with pytest.raises(InputError, match="loss.image_condition_prob"):
        LossConfig(image_condition_prob=1.5)
    with pytest.raises(InputError, match="loss.null_caption"):
        flow_inputs(
            torch.zeros(1, 1, 2, 1, 1),
            torch.zeros(1, 3, 4),
            torch.zeros(2, 4),
            LossConfig(),
            [np.random.default_rng(0)],
        )
