"""Our generation pipeline against diffusers' ``SanaWMPipeline`` (0.42.1) with the same tiny components, fp32.

diffusers runs its softmax attentions with bf16 q/k/v even in an fp32 model, which alone moves its output by
~1e-4; the comparison switches those casts off (``Tensor.bfloat16`` made a no-op while the oracle runs).
"""

from __future__ import annotations

import copy
import os
from unittest import mock

import numpy as np
import pytest
import torch
from helpers.tiny_parts import HEIGHT, INTRINSICS, PROMPT, WIDTH, make_pipeline, source_image

from sana_wm.camera import action_to_c2w
from sana_wm.inference import GenerationRequest
from sana_wm.inference.offload import enable_block_streaming
from sana_wm.inference.pipeline import load_pipeline
from sana_wm.utils.image import resize_and_center_crop
from sana_wm.vae import VideoVAE, to_uint8


def _oracle_run(tiny, image, *, steps: int, cfg: float, negative: str, seed: int, **camera):
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaWMPipeline

    pipe = SanaWMPipeline(
        tokenizer=tiny.tokenizer,
        text_encoder=tiny.gemma,
        vae=tiny.vae,
        transformer=tiny.oracle,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=9.8),
    )
    pipe.set_progress_bar_config(disable=True)
    with mock.patch.object(torch.Tensor, "bfloat16", lambda self: self):
        return pipe(
            image=image,
            prompt=PROMPT,
            negative_prompt=negative,
            num_inference_steps=steps,
            guidance_scale=cfg,
            generator=torch.Generator().manual_seed(seed),
            height=HEIGHT,
            width=WIDTH,
            output_type="np",
            **camera,
        )


def _random_path(count: int, seed: int) -> np.ndarray:
    """A smooth random rigid trajectory (yaw + pitch drift, forward motion with sideways wobble)."""
    rng = np.random.default_rng(seed)
    c2w = np.repeat(np.eye(4, dtype=np.float32)[None], count, axis=0)
    yaw, pitch = np.cumsum(rng.normal(0, 0.03, (2, count)), axis=1)
    for i in range(count):
        cy, sy, cp, sp = np.cos(yaw[i]), np.sin(yaw[i]), np.cos(pitch[i]), np.sin(pitch[i])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        c2w[i, :3, :3] = ry @ rx
        c2w[i, :3, 3] = [0.05 * np.sin(i / 3), 0.0, 0.08 * i]
    return c2w


CASES = {
    # The official setting: action string, one intrinsics vector, guidance with a negative prompt.
    "action_cfg": dict(
        image_hw=(100, 160),
        steps=4,
        cfg=5.0,
        negative="blurry",
        seed=42,
        camera=dict(action="w-8,jw-8", intrinsics=INTRINSICS, num_frames=17),
    ),
    # Pose file of 12 frames (-> 9 generated), per-frame intrinsics, portrait image, no guidance.
    "poses_portrait_nocfg": dict(
        image_hw=(150, 90),
        steps=3,
        cfg=1.0,
        negative="",
        seed=7,
        camera=dict(
            c2w=_random_path(12, seed=5),
            intrinsics=np.stack([[90.0 + i, 92.0 - i, 45.0, 75.0 + 0.5 * i] for i in range(12)]),
            num_frames=161,
        ),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_diffusers_pipeline(tiny, case: str) -> None:
    spec = CASES[case]
    image = source_image(*spec["image_hw"])
    ref = _oracle_run(
        tiny,
        image,
        steps=spec["steps"],
        cfg=spec["cfg"],
        negative=spec["negative"],
        seed=spec["seed"],
        **spec["camera"],
    )
    out = make_pipeline(tiny)(
        GenerationRequest.create(
            image,
            PROMPT,
            negative_prompt=spec["negative"],
            steps=spec["steps"],
            cfg_scale=spec["cfg"],
            seed=spec["seed"],
            height=HEIGHT,
            width=WIDTH,
            **spec["camera"],
        ),
        progress=False,
    )
    frames = out.frames.numpy()
    err = (out.latents - ref.latent).abs().max().item()
    print(
        f"{case}: max |latents - diffusers| = {err:.3g} (max |latents| {ref.latent.abs().max().item():.3g})"
    )
    assert out.latents.shape == ref.latent.shape
    assert err <= 1e-4
    assert out.num_frames == len(ref.c2w) == frames.shape[0]
    np.testing.assert_allclose(out.c2w, ref.c2w, atol=1e-6)
    # diffusers returns floats in [0, 1]; its uint8 conversion rounds x * 255. Latents agree to ~1e-5, so a
    # pixel may land on the other side of a rounding boundary: at most one level.
    ref_u8 = np.round(ref.frames * 255).astype(np.int16)
    assert frames.shape == (out.num_frames, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(np.int16) - ref_u8).max() <= 1


def test_frames_are_the_vae_decoding_of_the_latents_and_lazy(tiny) -> None:
    out = make_pipeline(tiny)(
        GenerationRequest.create(
            tiny.image,
            PROMPT,
            action="w-4,l-4",
            intrinsics=INTRINSICS,
            num_frames=9,
            steps=2,
            height=HEIGHT,
            width=WIDTH,
        ),
        progress=False,
    )
    assert "decode" not in out.timings  # nothing decoded yet
    first = out.frames.numpy()
    assert out.timings["decode"] > 0
    again = out.frames.numpy()
    expected = to_uint8(VideoVAE(tiny.vae).decode(out.latents)[0]).permute(1, 2, 3, 0).numpy()
    assert len(out.frames) == 9 and first.shape == (9, HEIGHT, WIDTH, 3)
    assert np.array_equal(first, expected) and np.array_equal(again, expected)
    # The camera path of the output is the rollout of the action, and latent frame 0 is the image latent.
    np.testing.assert_array_equal(out.c2w, action_to_c2w("w-4,l-4"))
    assert out.intrinsics_source == "given"
    cropped, _ = resize_and_center_crop(tiny.image, HEIGHT, WIDTH)
    pixels = torch.from_numpy(np.asarray(cropped, dtype=np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
    assert torch.equal(out.latents[:, :, :1], VideoVAE(tiny.vae).encode_image(pixels))


def test_block_streaming_hooks_leave_the_transformer_output_unchanged(tiny) -> None:
    """diffusers' group offloading on our plain nn.Module (CPU to CPU here): same numbers, hooks in place."""
    streamed = copy.deepcopy(tiny.ours)
    enable_block_streaming(streamed, torch.device("cpu"))
    assert any(hasattr(m, "_diffusers_hook") for m in streamed.blocks)
    gen = torch.Generator().manual_seed(0)
    args = (
        torch.randn(2, 16, 2, 2, 3, generator=gen),
        torch.tensor([[[0.0, 700.0]], [[0.0, 300.0]]]),
        torch.randn(2, 7, 64, generator=gen),
        torch.ones(2, 7),
        torch.cat(
            [torch.eye(4).flatten().repeat(2, 2, 1), torch.tensor([3.0, 3.0, 1.5, 1.0]).repeat(2, 2, 1)], -1
        ),
        torch.randn(2, 48, 2, 2, 3, generator=gen),
    )
    with torch.no_grad():
        assert torch.equal(streamed(*args), tiny.ours(*args))


def test_load_pipeline_from_disk_gives_the_same_video(tiny, tiny_dirs) -> None:
    kwargs = dict(
        action="w-8",
        intrinsics=INTRINSICS,
        num_frames=9,
        steps=2,
        seed=3,
        height=HEIGHT,
        width=WIDTH,
    )
    loaded = load_pipeline(
        tiny_dirs.model,
        vae_path=tiny_dirs.vae,
        text_encoder_path=tiny_dirs.text_encoder,
        device="cpu",
        dtype="float32",
        local_files_only=True,
    )
    assert loaded.weights.model == tiny_dirs.model and loaded.weights.config is None
    got = loaded(GenerationRequest.create(tiny.image, PROMPT, **kwargs), progress=False)
    want = make_pipeline(tiny)(GenerationRequest.create(tiny.image, PROMPT, **kwargs), progress=False)
    assert torch.equal(got.latents, want.latents)
    assert np.array_equal(got.frames.numpy(), want.frames.numpy())


def test_prefer_expandable_segments_respects_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    from sana_wm.inference.offload import ALLOC_CONF, prefer_expandable_segments

    monkeypatch.setenv(ALLOC_CONF, "max_split_size_mb:64")
    assert not prefer_expandable_segments("group")
    assert os.environ[ALLOC_CONF] == "max_split_size_mb:64"
    monkeypatch.delenv(ALLOC_CONF)
    assert not prefer_expandable_segments("none") and ALLOC_CONF not in os.environ
    assert prefer_expandable_segments("group") is not torch.cuda.is_initialized()
    if not torch.cuda.is_initialized():
        assert os.environ[ALLOC_CONF] == "expandable_segments:True"
