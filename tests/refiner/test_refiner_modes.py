"""Single-shot vs chunk-causal: equal where the attention pattern is the same, causal where it is not."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_refiner

from sana_wm.errors import InputError


@pytest.mark.parametrize("block_size", [5, 100])
def test_chunk_causal_with_one_block_is_single_shot(refiner, prompt, block_size) -> None:
    """One block after the sink and a window covering everything: the same attention pattern and noise."""
    z = tiny_refiner.latents(6, seed=9)
    single = refiner(z, prompt, progress=False)
    chunked = refiner(z, prompt, mode="chunk_causal", block_size=block_size, kv_max_frames=6, progress=False)
    assert torch.equal(single, chunked)
    assert torch.equal(single[:, :, :1], z[:, :, :1]) and (single[:, :, 1:] - z[:, :, 1:]).abs().min() > 0


def test_chunk_causal_blocks_do_not_see_the_future_and_single_shot_does(refiner, prompt) -> None:
    """Changing the input of the last block (frames 7..9) leaves earlier chunk-causal blocks bit-identical."""
    z = tiny_refiner.latents(10, seed=10)
    edited = z.clone()
    edited[:, :, 7:] += torch.randn(edited[:, :, 7:].shape, generator=torch.Generator().manual_seed(0))
    chunk = dict(mode="chunk_causal", block_size=3, kv_max_frames=11, progress=False)
    before, after = refiner(z, prompt, **chunk), refiner(edited, prompt, **chunk)
    assert torch.equal(before[:, :, :7], after[:, :, :7])
    assert (before[:, :, 7:] - after[:, :, 7:]).abs().amax(dim=(0, 1, 3, 4)).min() > 0.1
    single_before, single_after = refiner(z, prompt, progress=False), refiner(edited, prompt, progress=False)
    # Bidirectional: every refined frame depends on the edited ones.
    assert (single_before[:, :, 1:7] - single_after[:, :, 1:7]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-3


def test_seed_and_sigmas_are_used(refiner, prompt) -> None:
    z = tiny_refiner.latents(5, seed=11)
    base = refiner(z, prompt, progress=False)
    assert torch.equal(base, refiner(z, prompt, progress=False))
    assert (base - refiner(z, prompt, seed=43, progress=False)).abs().max() > 0.1
    # A one-step schedule from sigma 0.5: x = 0.5 z + 0.5 eps, then x0 = x - 0.5 v in one Euler step.
    assert (base - refiner(z, prompt, sigmas=(0.5, 0.0), progress=False)).abs().max() > 0.1


def test_sink_frames_pass_through_unchanged(refiner, prompt) -> None:
    z = tiny_refiner.latents(7, seed=12)
    for kwargs in ({}, {"mode": "chunk_causal", "sink_size": 2, "block_size": 2, "kv_max_frames": 4}):
        out = refiner(z, prompt, progress=False, **kwargs)
        sink = kwargs.get("sink_size", 1)
        assert torch.equal(out[:, :, :sink], z[:, :, :sink])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "causal"}, "--refiner_mode: 'causal' is not one of single_shot, chunk_causal"),
        ({"sink_size": 0}, "--sink_size: must be in [1, 4] for 5 latent frames"),
        ({"sink_size": 5}, "--sink_size: must be in [1, 4] for 5 latent frames"),
        ({"block_size": 0}, "--refiner_block_size: must be >= 1, got 0"),
        ({"kv_max_frames": 1}, "--refiner_kv_max_frames: must exceed the sink size 1, got 1"),
        (
            {"sigmas": (0.9, 0.5)},
            "sigmas: need a decreasing schedule in (0, 1] ending at 0.0, got [0.9, 0.5]",
        ),
        ({"sigmas": (0.5, 0.7, 0.0)}, "sigmas: need a decreasing schedule in (0, 1] ending at 0.0"),
        ({"fps": 0.0}, "--fps: must be > 0, got 0.0"),
    ],
)
def test_bad_arguments_are_input_errors(refiner, prompt, kwargs, message) -> None:
    with pytest.raises(InputError) as err:
        refiner(tiny_refiner.latents(5), prompt, progress=False, **kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_bad_latents_are_input_errors(refiner, prompt) -> None:
    with pytest.raises(InputError, match=r"latents: expected shape \(1, 8, T, h, w\), got \(1, 4, 5, 2, 3\)"):
        refiner(torch.zeros(1, 4, 5, 2, 3), prompt, progress=False)
    with pytest.raises(InputError, match=r"latents: expected shape \(1, 8, T, h, w\), got \(2, 8, 5, 2, 3\)"):
        refiner(torch.zeros(2, 8, 5, 2, 3), prompt, progress=False)
