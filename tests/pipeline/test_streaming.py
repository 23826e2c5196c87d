"""The streaming pipeline on tiny components (CPU, fp32): the rollout equals a loop over the official rule
written out here, the camera can grow between chunks, frames and poses line up, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.tiny_parts import INTRINSICS, PROMPT, EmptyFrames, make_pipeline

from sana_wm.camera import action_to_c2w
from sana_wm.errors import InputError
from sana_wm.inference.streaming import StreamSession, StreamSettings, snap_stream_frames
from sana_wm.models.causal import StreamCache

HEIGHT, WIDTH = 64, 96
FRAMES = 49  # latents 7: chunks [0, 4) and [4, 7)


def _session(pipe, c2w=None, **overrides) -> StreamSession:
    settings = StreamSettings(height=HEIGHT, width=WIDTH, seed=3, **overrides)
    poses = action_to_c2w("w-30,jw-30") if c2w is None else c2w
    return StreamSession.create(
        pipe, _image(), PROMPT, poses[:FRAMES], np.array(INTRINSICS), FRAMES, settings, decoder=EmptyFrames()
    )


def _image():
    from helpers.tiny_parts import source_image

    return source_image()


def test_snap_stream_frames() -> None:
    assert [snap_stream_frames(n) for n in (1, 25, 48, 49, 241, 250)] == [25, 25, 25, 49, 241, 241]


@torch.no_grad()
def test_stream_equals_the_official_rule_written_out(causal_pipe) -> None:
    """Per chunk: the student's 4 Euler steps (1000/960/889/727 → 0, frame 0 held at t = 0 and restored),
    each a read-only forward on the chunk, then a timestep-0 forward that writes the cache."""
    session = _session(causal_pipe)
    got = torch.cat([chunk.latents for chunk in session], dim=2)

    model, x = causal_pipe.transformer, session.noise.clone()
    cache = StreamCache(len(model.blocks), window=2, sink=True)
    sigmas = [1.0, 0.96, 0.889, 0.727, 0.0]
    for start, end in ((0, 4), (4, 7)):
        camera, plucker = session._camera(start, end)
        for k in range(4):
            t = torch.full((1, 1, end - start), 1000.0 * sigmas[k])
            if start == 0:
                t[:, :, 0] = 0.0
            v = model(
                x[:, :, start:end], t, session.text_BLD, session.text_mask_BL, camera, plucker, cache=cache
            )
            stepped = x[:, :, start:end] + (sigmas[k + 1] - sigmas[k]) * v
            if start == 0:
                stepped[:, :, 0] = session.noise[:, :, 0]
            x[:, :, start:end] = stepped
        zero = torch.zeros(1, 1, end - start)
        model(
            x[:, :, start:end],
            zero,
            session.text_BLD,
            session.text_mask_BL,
            camera,
            plucker,
            cache=cache,
            write_cache=True,
        )
    assert (got - x).abs().max() <= 1e-5 * x.abs().max()
    assert torch.equal(got[:, :, 0], session.noise[:, :, 0])  # the image latent stays


def test_camera_can_grow_between_chunks(causal_pipe) -> None:
    full = action_to_c2w("w-30,jw-30")[:FRAMES]
    want = [chunk.latents for chunk in _session(causal_pipe, full)]
    session = _session(causal_pipe, full[:25])  # poses of the first chunk only
    chunks = iter(session)
    first = next(chunks)
    with pytest.raises(InputError, match="extend_camera"):
        next(chunks)
    assert torch.equal(first.latents, want[0])
    session = _session(causal_pipe, full[:25])
    chunks = iter(session)
    next(chunks)
    turned = action_to_c2w("w-24,lw-30")[25:FRAMES]  # a different second chunk
    session.extend_camera(turned)
    second = next(chunks)
    assert (second.latents - want[1]).abs().max() > 1e-3  # the new poses were followed
    session = _session(causal_pipe, full[:25])
    chunks = iter(session)
    next(chunks)
    session.extend_camera(full[25:])
    assert torch.equal(next(chunks).latents, want[1])


def test_pose_source_is_asked_for_exactly_the_missing_poses(causal_pipe) -> None:
    full = action_to_c2w("w-30,jw-30")[:FRAMES]
    want = [chunk.latents for chunk in _session(causal_pipe, full)]
    session = _session(causal_pipe, full[:25])  # poses of the first chunk only
    asked = []

    def source(count: int) -> np.ndarray:
        asked.append(count)
        have = session.c2w_F44.shape[0]
        return full[have : have + count]

    session.pose_source = source
    got = [chunk.latents for chunk in session]
    assert asked == [24]  # once, just before the second chunk: its 24 pixel frames
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_frames_and_poses_line_up(causal_pipe) -> None:
    chunks = list(_session(causal_pipe))
    assert [c.frames.shape[0] for c in chunks] == [25, 24]
    assert [c.first_frame for c in chunks] == [0, 25]
    poses = action_to_c2w("w-30,jw-30")[:FRAMES]
    assert np.array_equal(np.concatenate([c.c2w for c in chunks]), poses)


def test_bad_input(tiny, causal_pipe) -> None:
    with pytest.raises(InputError, match="bidirectional"):
        _session(make_pipeline(tiny))
    with pytest.raises(InputError, match="24k"):
        StreamSession.create(
            causal_pipe,
            _image(),
            PROMPT,
            action_to_c2w("w-60"),
            np.array(INTRINSICS),
            41,
            StreamSettings(height=HEIGHT, width=WIDTH),
        )
    with pytest.raises(InputError, match="denoising_step_list"):
        StreamSettings(step_list="1000,500")


@torch.no_grad()
def test_generate_with_a_chunk_causal_model_runs_the_official_staircase(causal_pipe) -> None:
    """``generate`` with a chunk-causal model (the official chunk-causal teacher) samples with the
    diffusion-forcing staircase (``ChunkFlowEuler``) over the model's chunks, feeding only started chunks."""
    from sana_wm.inference import CameraPath, GenerationRequest, SamplingSettings
    from sana_wm.samplers import flow_sigmas
    from sana_wm.samplers.chunked import sample_chunk_flow_euler

    request = GenerationRequest(
        image=_image(),
        prompt=PROMPT,
        camera=CameraPath.from_action("w-30,jw-30", intrinsics=np.array(INTRINSICS)),
        sampling=SamplingSettings(num_frames=FRAMES, steps=3, cfg_scale=1.0, height=HEIGHT, width=WIDTH),
    )
    got = causal_pipe(request, progress=False).latents
    seen = []
    real = causal_pipe.transformer.forward

    def spy(*args, **kwargs):
        seen.append((args[0].shape[2], kwargs["chunks"].starts))
        return real(*args, **kwargs)

    causal_pipe.transformer.forward = spy
    try:
        again = causal_pipe(request, progress=False).latents
    finally:
        del causal_pipe.transformer.forward
    assert torch.equal(got, again)
    # 7 latent frames, chunks [0, 4) and [4, 7); 3 steps each, the second chunk starting at step int(3/2) = 1
    assert seen == [(4, (0,)), (7, (0, 4)), (7, (0, 4)), (7, (0, 4))]
    assert sample_chunk_flow_euler is not None and flow_sigmas(3, 9.8).numel() == 4
