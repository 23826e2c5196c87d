"""The self-forcing DMD generator's rollout (``sana_wm.train.dmd.self_forcing_rollout``) is the streaming
sampler of inference: from a :class:`StreamSession`'s noise and conditioning it produces the session's latents
bit for bit (and, keeping the exit steps' graphs for the DMD generator step, the same to float rounding)."""

from __future__ import annotations

import numpy as np
import torch
from helpers.tiny_parts import INTRINSICS, PROMPT, EmptyFrames, source_image

from sana_wm.camera import action_to_c2w
from sana_wm.inference.streaming import StreamSession, StreamSettings
from sana_wm.samplers.chunked import STUDENT_STEPS, student_sigmas
from sana_wm.train.dmd import Conditioning, self_forcing_rollout

FRAMES = 49  # latents 7: chunks [0, 4) and [4, 7)


def test_rollout_equals_the_streaming_session(causal_pipe, one_thread) -> None:
    window, sink = 2, True
    settings = StreamSettings(height=64, width=96, seed=5, num_cached_blocks=window, sink=sink)
    session = StreamSession.create(
        causal_pipe,
        source_image(),
        PROMPT,
        action_to_c2w("w-40,lw-40")[:FRAMES],
        np.array(INTRINSICS),
        FRAMES,
        settings,
        decoder=EmptyFrames(),
    )
    with torch.no_grad():
        streamed = torch.cat([chunk.latents for chunk in session], dim=2)
    cameras = [session._camera(start, end) for start, end in session.segments]
    cond = Conditioning(
        text=session.text_BLD,
        text_mask=session.text_mask_BL,
        camera=torch.cat([c for c, _ in cameras], dim=1),
        plucker=torch.cat([p for _, p in cameras], dim=2),
    )
    sigmas = student_sigmas(STUDENT_STEPS)
    model = causal_pipe.transformer
    with torch.no_grad():
        rolled = self_forcing_rollout(model, session.noise, cond, sigmas, num_cached_blocks=window, sink=sink)
    assert torch.equal(rolled, streamed)
    # The DMD generator's rollout keeps the exit steps' graphs: same values, and a gradient for the weights.
    model.zero_grad()
    graphed = self_forcing_rollout(
        model, session.noise, cond, sigmas, num_cached_blocks=window, sink=sink, grad=True
    )
    assert torch.allclose(graphed.detach(), streamed, rtol=1e-5, atol=1e-6)
    graphed[:, :, 4:].square().mean().backward()
    assert model.final_layer.linear.weight.grad.abs().sum() > 0
    model.zero_grad()
