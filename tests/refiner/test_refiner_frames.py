"""Decoding refined latents drops the first pixel frame; per-frame camera data shifts by one."""

from __future__ import annotations

import numpy as np
import torch
from helpers import tiny_refiner

from sana_wm.inference.refiner import align_to_refined, decode_refined, refined_num_frames
from sana_wm.vae import VideoVAE


def test_decoded_frames_match_diffusers_without_the_sink_frame(parts, refiner) -> None:
    vae = tiny_refiner.vae()
    oracle = tiny_refiner.oracle(parts, max_length=tiny_refiner.TEXT_LENGTH, vae=vae)
    z = tiny_refiner.latents(3, seed=14)
    latents = oracle(
        z, tiny_refiner.PROMPT, fps=16, generator=torch.Generator().manual_seed(42), output_type="latent"
    )
    frames_FCHW = oracle(
        z, tiny_refiner.PROMPT, fps=16, generator=torch.Generator().manual_seed(42), output_type="pt"
    )
    ours = np.stack(list(decode_refined(VideoVAE(vae), latents)))
    assert ours.shape == (16, 64, 96, 3) and frames_FCHW.shape == (16, 3, 64, 96)
    want = (frames_FCHW.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(ours, want)


def test_frame_count_and_trajectory_alignment() -> None:
    assert [refined_num_frames(f) for f in (17, 161, 321)] == [16, 160, 320]
    c2w_F44 = np.tile(np.eye(4, dtype=np.float32), (321, 1, 1))
    c2w_F44[:, 2, 3] = np.arange(321) * 0.05  # frame i sits 0.05 i metres forward
    intrinsics_F4 = np.stack(
        [np.full(321, 500.0), np.full(321, 500.0), np.arange(321.0), np.full(321, 352.0)], 1
    )
    aligned = align_to_refined(c2w_F44)
    assert aligned.shape == (320, 4, 4) and np.array_equal(aligned, c2w_F44[1:321])
    assert aligned[0, 2, 3] == np.float32(0.05) and aligned[-1, 2, 3] == np.float32(320 * 0.05)
    assert np.array_equal(align_to_refined(intrinsics_F4)[:, 2], np.arange(1.0, 321.0))


def test_decoding_is_lazy() -> None:
    calls = []

    class CountingVAE:
        def decode_frames_uint8(self, latents):
            calls.append(latents.shape)
            yield from (np.full((2, 2, 3), i, np.uint8) for i in range(9))

    frames = decode_refined(CountingVAE(), torch.zeros(1, 8, 2, 1, 1))
    assert calls == []
    assert [int(f[0, 0, 0]) for f in frames] == list(range(1, 9)) and len(calls) == 1
