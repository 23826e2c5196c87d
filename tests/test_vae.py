import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLLTX2Video, SanaWMPipeline
from diffusers.video_processor import VideoProcessor

from sana_wm.errors import InputError
from sana_wm.tiny import randomize_latent_stats, tiny_ltx2_vae
from sana_wm.vae import LATENT_STRIDE_THW, VideoVAE, to_uint8

SMALL_TILES = dict(
    tile_sample_min_num_frames=16,
    tile_sample_stride_num_frames=8,
    tile_sample_min_size=64,
    tile_sample_stride_size=32,
)


def _tiny_vae(**overrides) -> AutoencoderKLLTX2Video:
    vae = tiny_ltx2_vae(8, seed=0, **{"scaling_factor": 0.7, **overrides})
    return randomize_latent_stats(vae, seed=1)


def _pipe(vae: AutoencoderKLLTX2Video) -> SanaWMPipeline:
    return SanaWMPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=None, scheduler=None)


def test_encode_image_matches_pipeline_first_frame_latent() -> None:
    vae = _tiny_vae()
    ours = VideoVAE(vae)
    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 64, 96, generator=g) * 2 - 1
    with torch.no_grad():
        ref = _pipe(vae)._encode_first_frame(image, torch.device("cpu"), torch.float32)
        raw = vae.encode(image.unsqueeze(2)).latent_dist.mode()
    got = ours.encode_image(image)
    assert got.shape == (2, 8, 1, 2, 3)
    assert (got - ref).abs().max().item() <= 1e-5
    # Hand formula: (z - mean) * scaling_factor / std per channel.
    hand = (raw - vae.latents_mean.view(1, 8, 1, 1, 1)) * 0.7 / vae.latents_std.view(1, 8, 1, 1, 1)
    assert (got - hand).abs().max().item() <= 1e-6
    assert (ours.denormalize(got) - raw).abs().max().item() <= 1e-5


@pytest.mark.parametrize("tiles", [{}, SMALL_TILES], ids=["official_tiles", "small_tiles"])
def test_decode_matches_pipeline_decode(tiles: dict) -> None:
    vae = _tiny_vae()
    ours = VideoVAE(vae, **tiles)
    latents = torch.randn(1, 8, 5, 2, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = _pipe(vae)._decode_latents(latents)
    got = ours.decode(latents)
    assert got.shape == (1, 3, 33, 64, 96)
    assert (got - ref).abs().max().item() <= 1e-5


def test_small_tiles_really_tile_and_streaming_equals_one_shot() -> None:
    vae = _tiny_vae()
    ours = VideoVAE(vae, **SMALL_TILES)
    latents = torch.randn(1, 8, 6, 2, 3, generator=torch.Generator().manual_seed(4))
    video = ours.decode(latents)
    with torch.no_grad():
        untiled = vae.decoder(ours.denormalize(latents), None)
    assert (video - untiled).abs().max().item() > 1e-3  # the tiled path is a different computation...
    frames = list(ours.decode_frames_uint8(latents))
    assert len(frames) == 41 and frames[0].shape == (64, 96, 3) and frames[0].dtype == np.uint8
    # ...and streaming it tile by tile gives exactly its pixels, also as diffusers converts them for PIL.
    assert np.array_equal(np.stack(frames), to_uint8(video[0]).permute(1, 2, 3, 0).numpy())
    pil = VideoProcessor(vae_scale_factor=32).postprocess_video(video, output_type="pil")[0]
    assert np.array_equal(np.stack(frames), np.stack([np.asarray(p) for p in pil]))


def test_streaming_without_framewise_tiling_and_uint8_values() -> None:
    vae = _tiny_vae()
    ours = VideoVAE(vae)
    latents = torch.randn(1, 8, 2, 2, 3, generator=torch.Generator().manual_seed(5))
    frames = np.stack(list(ours.decode_frames_uint8(latents)))
    assert np.array_equal(frames, to_uint8(ours.decode(latents)[0]).permute(1, 2, 3, 0).numpy())
    assert to_uint8(torch.tensor([-2.0, -1.0, 0.0, 0.002, 1.0, 3.0])).tolist() == [0, 0, 128, 128, 255, 255]


def test_from_pretrained_round_trip(tmp_path) -> None:
    vae = _tiny_vae()
    vae.save_pretrained(tmp_path / "vae")
    loaded = VideoVAE.from_pretrained(tmp_path, dtype=torch.float32, local_files_only=True)
    assert torch.equal(loaded.vae.latents_mean, vae.latents_mean)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    assert torch.equal(loaded.encode_image(image), VideoVAE(vae).encode_image(image))
    assert LATENT_STRIDE_THW == (8, 32, 32)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="compression"):
        VideoVAE(_tiny_vae(spatial_compression_ratio=None, temporal_compression_ratio=None))
    ours = VideoVAE(_tiny_vae())
    with pytest.raises(InputError, match="^image:"):
        ours.encode_image(torch.zeros(1, 3, 48, 64))
    with pytest.raises(InputError, match="^video:"):
        ours.encode_video(torch.zeros(1, 3, 4, 64, 64))
    with pytest.raises(InputError, match="^latents:"):
        next(ours.decode_frames_uint8(torch.zeros(2, 8, 2, 2, 2)))
    with pytest.raises(InputError, match="^vae"):
        VideoVAE.from_pretrained("/nonexistent/sana-wm-vae", local_files_only=True)


def test_a_folder_with_pickled_weights_only_is_refused(tmp_path) -> None:
    """diffusers would fall back to unpickling ``diffusion_pytorch_model.bin``: we never do."""
    vae = _tiny_vae()
    vae.save_pretrained(tmp_path / "vae")
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(vae.state_dict(), tmp_path / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(InputError, match="vae .*safetensors"):
        VideoVAE.from_pretrained(tmp_path, local_files_only=True, dtype=torch.float32)
