"""The demo model's training pieces: symmetry variants, latent dataset, latent statistics, metrics, card."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from demo_training.data import (
    CpuRenderPool,
    LatentClips,
    RenderedClip,
    clip_settings,
    render_clip,
    variant,
)
from demo_training.evaluate import (
    correlation,
    mirrored_action,
    motion,
    phase_shift,
    psnr,
    sign_agreement,
)
from demo_training.recipe import dit_config, tiny, vae_config
from demo_training.run import fill_model_card
from demo_training.vae_training import (
    build_vae,
    init_for_training,
    load_vae,
    lr_factor,
    set_latent_stats,
)

from sana_wm.camera import prepare_camera
from sana_wm.errors import InputError
from sana_wm.inference.demo_model import null_text
from sana_wm.worlds import camera_rays

SETTINGS = clip_settings(32, 64, 17, seed=3, shadows=False)


@pytest.fixture(scope="module")
def clip() -> RenderedClip:
    return render_clip(SETTINGS, 1)


def test_mirrored_variant_sees_the_mirrored_rays(clip: RenderedClip) -> None:
    frames, c2w, intrinsics = variant(clip, mirrored=True, reversed_=False)
    assert torch.equal(frames, clip.frames_FHW3.flip(2))
    np.testing.assert_array_equal(intrinsics[:, 2], 64 - 1 - clip.intrinsics_F4[:, 2])
    origin, rays, _ = camera_rays(torch.from_numpy(c2w), torch.from_numpy(intrinsics), 32, 64)
    origin_0, rays_0, _ = camera_rays(
        torch.from_numpy(clip.c2w_F44), torch.from_numpy(clip.intrinsics_F4), 32, 64
    )
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    # Column u of the flipped image looks along the mirror image of column W - 1 - u's ray.
    torch.testing.assert_close(rays, rays_0.flip(2) * mirror, atol=2e-6, rtol=0)
    torch.testing.assert_close(origin, origin_0 * mirror, atol=1e-6, rtol=0)
    assert np.linalg.det(c2w[:, :3, :3]) == pytest.approx(np.ones(17), abs=1e-5)  # still a rotation


def test_reversed_variant_is_the_path_played_backwards(clip: RenderedClip) -> None:
    frames, c2w, intrinsics = variant(clip, mirrored=False, reversed_=True)
    assert torch.equal(frames, clip.frames_FHW3.flip(0))
    camera_T20, _ = prepare_camera(c2w, intrinsics, 32, 64)
    last = np.linalg.inv(clip.c2w_F44[-1].astype(np.float64))
    for k in range(camera_T20.shape[0]):  # latent frame k samples pixel frame 8k of the reversed clip
        expected = last @ clip.c2w_F44[16 - 8 * k].astype(np.float64)
        np.testing.assert_allclose(camera_T20[k, :16].reshape(4, 4).numpy(), expected, atol=2e-6)


def test_latent_clips_serve_the_null_caption() -> None:
    latents, camera, plucker = torch.randn(3, 4, 2, 1, 2), torch.randn(3, 2, 20), torch.randn(3, 48, 2, 1, 2)
    data = LatentClips(latents, camera, plucker, caption_channels=8)
    sample = data[2]
    text, mask = null_text(8)
    assert len(data) == 3
    assert torch.equal(sample["latents"], latents[2]) and torch.equal(sample["chunk_plucker"], plucker[2])
    assert torch.equal(sample["text"], text[0]) and torch.equal(sample["text_mask"], mask[0])


def test_latent_stats_match_the_inference_normalisation() -> None:
    from sana_wm.vae import VideoVAE

    recipe = tiny()
    vae = build_vae(recipe, seed=0)
    gen = torch.Generator().manual_seed(0)
    raw = 3.0 + 2.0 * torch.randn(6, recipe.latent_channels, 3, 2, 3, generator=gen)
    normalised = set_latent_stats(vae, raw)
    assert normalised.mean().abs() < 1e-2 and (normalised.std(dim=(0, 2, 3, 4)) - 1).abs().max() < 5e-3
    # The buffers are fp16-exact, so the shipped (fp16) VAE normalises exactly like the training latents.
    assert torch.equal(vae.latents_std.half().float(), vae.latents_std)
    torch.testing.assert_close(VideoVAE(vae).normalize(raw), normalised, atol=1e-5, rtol=0)


def test_training_init_starts_the_decoder_at_the_mean_colour(clip: RenderedClip) -> None:
    vae = build_vae(tiny(), seed=0)
    init_for_training(vae, [clip, clip])
    expected = clip.frames_FHW3.double().mean(dim=(0, 1, 2)) / 127.5 - 1  # e.g. sky-and-ground grey-blue
    z = torch.randn(2, 8, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        video = vae.decode(z).sample  # (2, 3, 9, 64, 96): every pixel of every frame
        logvar = vae.encode(torch.zeros(1, 3, 1, 32, 64)).latent_dist.logvar
    torch.testing.assert_close(
        video, expected.float().view(1, 3, 1, 1, 1).expand_as(video), atol=1e-6, rtol=0
    )
    # The log-variance channel starts at -4 up to what the zero input adds through the weights.
    assert float(logvar.mean()) == pytest.approx(-4.0, abs=0.5)


def test_a_saved_vae_must_match_the_recipe(tmp_path) -> None:
    import dataclasses

    recipe = tiny()
    build_vae(recipe, seed=0).save_pretrained(str(tmp_path / "vae"))
    assert load_vae(tmp_path / "vae", recipe).config.latent_channels == 8
    with pytest.raises(InputError, match="latent_channels"):
        load_vae(tmp_path / "vae", dataclasses.replace(recipe, latent_channels=16))


def test_recipe_models_have_the_release_strides_and_both_block_kinds() -> None:
    for recipe in (tiny(),):
        vae = build_vae(recipe, seed=0)
        assert (vae.temporal_compression_ratio, vae.spatial_compression_ratio) == (8, 32)
        cfg = dit_config(recipe)
        kinds = {cfg.is_softmax_block(i) for i in range(cfg.depth)}
        assert kinds == {True, False} and cfg.in_channels == vae_config(recipe)["latent_channels"]


def test_cpu_workers_render_the_same_pixels(clip: RenderedClip) -> None:
    pool = CpuRenderPool(SETTINGS, first_index=1, workers=1, max_clips=1)
    got: list[RenderedClip] = []
    try:
        for _ in range(600):
            got += pool.harvest()
            if got:
                break
            pool.pool.apply(math.sqrt, (1.0,))  # wait a little without sleeping blind
    finally:
        got += pool.stop()
    assert [c.key for c in got] == [clip.key]
    assert torch.equal(got[0].frames_FHW3, clip.frames_FHW3)
    np.testing.assert_array_equal(got[0].c2w_F44, clip.c2w_F44)


def test_phase_shift_recovers_integer_translations() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((48, 80))
    image = np.cumsum(np.cumsum(image, 0), 1)  # smooth, non-periodic content
    image = image / image.max()
    for dy, dx in [(0, 0), (3, -5), (-2, 7), (0, 11)]:
        moved = np.roll(image, (dy, dx), axis=(0, 1))
        assert phase_shift(image, moved) == (dy, dx)


def test_motion_of_a_panning_video() -> None:
    rng = np.random.default_rng(1)
    world = (rng.random((40, 400, 3)) * 255).astype(np.uint8)
    frames = np.stack(
        [world[:, 100 - 2 * k : 196 - 2 * k] for k in range(17)]
    )  # content moves right 2 px/frame
    shifts = motion(frames, gap=4)
    np.testing.assert_array_equal(shifts, np.tile([0.0, 8.0], (4, 1)))


def test_metric_helpers_hand_values() -> None:
    assert correlation(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)
    assert correlation(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert correlation(np.ones(3), np.arange(3.0)) == 0.0
    assert sign_agreement(np.array([1.0, -2.0, 0.5, 3.0]), np.array([2.0, 2.0, 0.2, -1.0])) == pytest.approx(
        1 / 3
    )
    assert math.isnan(sign_agreement(np.zeros(2), np.zeros(2)))
    a = np.zeros((1, 2, 2, 3), np.uint8)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255.0))
    assert mirrored_action("w-16,jw-32,lw-32", "v1") == "w-16,lw-32,jw-32"
    assert mirrored_action("aW-3,D-2", "v2") == "dW-3,A-2"


def test_lr_factor_warms_up_then_follows_a_cosine_to_the_floor() -> None:
    assert lr_factor(0, 0.0, warmup=10) == pytest.approx(0.1)
    assert lr_factor(9, 0.0, warmup=10) == pytest.approx(1.0)
    assert lr_factor(50, 0.5, warmup=10) == pytest.approx(0.55)
    assert lr_factor(50, 1.0, warmup=10) == pytest.approx(0.1)
    assert lr_factor(50, 3.0, warmup=10) == pytest.approx(0.1)


def test_model_card_fields_are_filled_and_stay_fillable() -> None:
    def field(name: str, value: str) -> str:
        return f"<!-- m:{name} -->{value}<!-- /m -->"

    template = f"a {field('steps', 'TBD')} b {field('psnr', 'TBD')} c {field('other', 'TBD')}"
    filled = fill_model_card(template, {"steps": 12345, "psnr": 24.567, "unused": 1})
    assert filled == f"a {field('steps', '12,345')} b {field('psnr', '24.6')} c {field('other', 'TBD')}"
    assert fill_model_card(filled, {"steps": 7}) == filled.replace("12,345", "7")
