"""The self-forcing DMD generator's rollout (``sana_wm.train.dmd.self_forcing_rollout``) is the streaming
sampler of inference: from a :class:`StreamSession`'s noise and conditioning it produces the session's latents
bit for bit (and, keeping the exit steps' graphs for the DMD generator step, the same to float rounding)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers.tiny_parts import INTRINSICS, PROMPT, make_pipeline, source_image

from sana_wm.camera import action_to_c2w
from sana_wm.inference.streaming import StreamSession, StreamSettings
from sana_wm.models import SanaWMTransformer
from sana_wm.samplers.chunked import STUDENT_STEPS, student_sigmas
from sana_wm.train.dmd import Conditioning, self_forcing_rollout

FRAMES = 49  # latents 7: chunks [0, 4) and [4, 7)


class _Keep:
    """A decoder that decodes nothing: the test compares latents."""

    first = True

    def decode_chunk_uint8(self, latents):
        count, self.first = 8 * latents.shape[2] - 7 * self.first, False
        return np.zeros((count, 1, 1, 3), np.uint8)

    def flush_uint8(self):
        return np.zeros((0, 1, 1, 3), np.uint8)


@pytest.fixture(scope="module")
def causal_pipe(tiny):
    pipe = make_pipeline(tiny)
    model = SanaWMTransformer(dataclasses.replace(tiny.ours.config, chunk_size=3)).eval()
    model.load_state_dict(tiny.ours.state_dict())
    pipe.transformer = model
    return pipe


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny forwards: more threads only wait for each other on a busy CPU
    yield
    torch.set_num_threads(threads)


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
        decoder=_Keep(),
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
