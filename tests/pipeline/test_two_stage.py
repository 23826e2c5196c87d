"""Stage 1 + the refiner (``inference.two_stage``): the refiner library's numbers on the stage-1 latents."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from helpers.tiny_parts import HEIGHT, INTRINSICS, PROMPT, WIDTH, make_pipeline

from sana_wm.errors import InputError
from sana_wm.inference import GenerationRequest, RefinerSettings
from sana_wm.inference.pipeline import Pipeline
from sana_wm.inference.refiner import Refiner, decode_refined
from sana_wm.inference.request import REFINER_MODES
from sana_wm.inference.two_stage import generate_two_stage
from sana_wm.inference.weights import resolve_refiner_weights
from sana_wm.vae import VideoVAE

STAGE1 = dict(action="w-8,jw-8", intrinsics=INTRINSICS, num_frames=17, steps=2, height=HEIGHT, width=WIDTH)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def refiner_paths(refiner_dir):
    return resolve_refiner_weights(refiner_dir, refiner_dir / "text_encoder", local_files_only=True)


def _direct(paths, latents: torch.Tensor, settings: RefinerSettings) -> torch.Tensor:
    """The refiner library on its own, loaded from the same folders."""
    refiner = Refiner.from_paths(paths, device="cpu", dtype=torch.float32)
    return refiner(
        latents,
        PROMPT,
        mode=settings.mode,
        sink_size=settings.sink_size,
        block_size=settings.block_size,
        kv_max_frames=settings.kv_max_frames,
        seed=settings.seed,
        progress=False,
    )


@pytest.mark.parametrize(
    "settings",
    [RefinerSettings(), RefinerSettings(mode="chunk_causal", block_size=1, kv_max_frames=2, seed=7)],
    ids=["single_shot", "chunk_causal"],
)
def test_two_stage_is_the_refiner_on_the_stage1_latents(tiny, refiner_paths, settings) -> None:
    pipeline = make_pipeline(tiny)
    request = GenerationRequest.create(tiny.image, PROMPT, refiner=settings, seed=5, **STAGE1)
    out = generate_two_stage(pipeline, request, refiner=refiner_paths, progress=False)
    stage1 = make_pipeline(tiny)(request, progress=False)
    assert torch.equal(out.stage1.latents, stage1.latents)
    want = _direct(refiner_paths, stage1.latents, settings)
    assert torch.equal(out.latents, want)
    # Frame 0 (the sink) is passed through; the other latent frames are new.
    assert torch.equal(out.latents[:, :, :1], stage1.latents[:, :, :1])
    assert (out.latents[:, :, 1:] - stage1.latents[:, :, 1:]).abs().amax(dim=(0, 1, 3, 4)).min() > 0.1

    # 17 frames -> 16: the decoded refined video without its first frame; poses and intrinsics shift by one.
    assert out.num_frames == len(out.frames) == 16 and out.stage1.num_frames == 17
    frames = out.frames.numpy()
    assert np.array_equal(frames, np.stack(list(VideoVAE(tiny.vae).decode_frames_uint8(want)))[1:])
    np.testing.assert_array_equal(out.c2w, stage1.c2w[1:17])
    np.testing.assert_array_equal(out.intrinsics, stage1.intrinsics[1:17])
    assert out.intrinsics_source == "given"
    assert {"sampling", "refiner_load", "refine_text", "refine", "decode"} <= set(out.timings)
    assert "decode" not in out.stage1.timings  # the stage-1 frames were not decoded


def test_a_loaded_refiner_is_used_as_given_and_kept_whole(tiny, refiner_paths) -> None:
    """A Refiner passed in keeps its text encoder; the same numbers as the one loaded from the folders."""
    refiner = Refiner.from_paths(refiner_paths, device="cpu", dtype=torch.float32)
    pipeline = make_pipeline(tiny)
    pipeline.refiner_weights = refiner_paths
    request = GenerationRequest.create(tiny.image, PROMPT, seed=3, **STAGE1)
    from_paths = generate_two_stage(pipeline, request, progress=False)
    given = generate_two_stage(pipeline, request, refiner=refiner, progress=False)
    assert refiner.text_encoder is not None
    assert torch.equal(given.latents, from_paths.latents)
    assert np.array_equal(given.frames.numpy(), np.stack(list(decode_refined(pipeline.vae, given.latents))))


def test_without_refiner_weights_the_call_is_refused_before_stage1(tiny) -> None:
    with (
        mock.patch.object(Pipeline, "__call__", side_effect=AssertionError("stage 1 ran")),
        pytest.raises(ValueError, match="not loaded with refiner=True"),
    ):
        generate_two_stage(
            make_pipeline(tiny), GenerationRequest.create(tiny.image, PROMPT, **STAGE1), progress=False
        )


@pytest.mark.parametrize(
    ("settings", "num_frames", "message"),
    [
        ({}, 1, "--num_frames: must be a whole number in [9, 100000], got 1"),
        ({"sink_size": 3}, 17, "--sink_size: must be in [1, 2] for 3 latent frames"),
        ({"sink_size": 0}, 17, "--sink_size: must be in [1, 2] for 3 latent frames"),
        ({"mode": "causal"}, 17, "--refiner_mode: 'causal' is not one of single_shot, chunk_causal"),
        ({"block_size": 0}, 17, "--refiner_block_size: must be >= 1, got 0"),
        ({"kv_max_frames": 1}, 17, "--refiner_kv_max_frames: must exceed the sink size 1, got 1"),
        ({"seed": 1.5}, 17, "--refiner_seed: must be a whole number, got 1.5"),
    ],
)
def test_bad_settings_are_refused_when_the_request_is_made(tiny, settings, num_frames, message) -> None:
    """The request cannot be made, so neither stage can run on it."""
    stage1 = {**STAGE1, "num_frames": num_frames}
    with pytest.raises(InputError) as err:
        GenerationRequest.create(tiny.image, PROMPT, refiner=RefinerSettings(**settings), **stage1)
    assert str(err.value).startswith(message)


def test_the_cli_offers_the_refiner_modes() -> None:
    from sana_wm.cli.generate import REFINER_MODES as CLI_MODES

    assert CLI_MODES == REFINER_MODES == ("single_shot", "chunk_causal")
