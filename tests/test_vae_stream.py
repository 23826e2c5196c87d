import math

import numpy as np
import pytest
import torch
from PIL import Image

from sana_wm.errors import InputError
from sana_wm.inference.demo_model import DEMO_DIR, FIRST_FRAME_FILE, VAE_SUBFOLDER
from sana_wm.tiny import randomize_latent_stats, tiny_ltx2_vae
from sana_wm.vae import CausalConv3d, Upsampler3d, VideoVAE, to_uint8
from sana_wm.vae_stream import (
    DEFAULT_LOOKAHEAD,
    StreamingDecoder,
    receptive_field_latents,
    replace_blank_frames,
)


def _vae(causal: bool, **tiles: int) -> VideoVAE:
    vae = tiny_ltx2_vae(8, seed=0, decoder_causal=causal, scaling_factor=0.7)
    return VideoVAE(randomize_latent_stats(vae, seed=1), **tiles)


def _latents(frames: int, seed: int, batch: int = 1, size: tuple[int, int] = (2, 3)) -> torch.Tensor:
    return torch.randn(batch, 8, frames, *size, generator=torch.Generator().manual_seed(seed))


def _stream(decoder: StreamingDecoder, latents: torch.Tensor, split: list[int]) -> list[torch.Tensor]:
    return [decoder.decode_chunk(chunk) for chunk in torch.split(latents, split, dim=2)]


def _one_shot(ours: VideoVAE, latents: torch.Tensor, causal: bool | None = None) -> torch.Tensor:
    with torch.no_grad():  # the whole sequence through the decoder at once, no temporal tiles
        return ours.vae.decoder(ours.denormalize(latents), None, causal=causal)


def _max_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    assert got.shape == ref.shape
    return (got - ref).abs().max().item() if got.numel() else 0.0


def _patched_forwards(ours: VideoVAE) -> list[str]:
    kinds = (CausalConv3d, Upsampler3d)
    return [
        n for n, m in ours.vae.decoder.named_modules() if isinstance(m, kinds) and "forward" in m.__dict__
    ]


@pytest.mark.parametrize("split", [[4, 3, 3], [1, 3, 3, 3], [5, 5]])
def test_causal_streaming_equals_one_shot_decode(split: list[int]) -> None:
    ours = _vae(causal=True)
    latents = _latents(10, seed=3)
    ref = ours.vae.decode(ours.denormalize(latents), causal=True).sample  # 10 latents: one decoder call
    decoder = StreamingDecoder(ours)
    assert decoder.exact and decoder.context == 0 and decoder.lookahead == 0
    outs = _stream(decoder, latents, split)
    assert [o.shape[2] for o in outs] == [8 * (split[0] - 1) + 1] + [8 * k for k in split[1:]]
    got = torch.cat(outs, dim=2)
    assert (got - ref).abs().max().item() <= 1e-5
    assert ref.abs().mean().item() > 0.05  # not a trivially flat video
    assert _patched_forwards(ours) == []  # diffusers' forwards are back after every call


def test_causal_state_is_constant_and_long_videos_stay_exact() -> None:
    ours = _vae(causal=True)
    latents = _latents(1 + 3 * 6, seed=4, batch=2)
    decoder = StreamingDecoder(ours)
    outs, sizes = [], []
    for chunk in torch.split(latents, [1] + [3] * 6, dim=2):
        outs.append(decoder.decode_chunk(chunk))
        sizes.append(decoder.state_numel())
        frames = {t.shape[2] for tile in decoder._states.values() for t in tile.values()}
        assert frames == {2}  # k - 1 frames per causal conv, never the history
    # Expected: 2 frames of each causal conv's input, from the input shapes of one plain decoder call.
    inputs: list[tuple[int, ...]] = []
    convs = [m for m in ours.vae.decoder.modules() if isinstance(m, CausalConv3d)]
    hooks = [c.register_forward_pre_hook(lambda _, args: inputs.append(args[0].shape)) for c in convs]
    _one_shot(ours, latents[:, :, :1], causal=True)
    for hook in hooks:
        hook.remove()
    expected = sum(2 * b * c * h * w for b, c, _, h, w in inputs)
    assert len(decoder._states[(0, 0)]) == len(convs) == len(inputs)
    assert sizes == [expected] * 7  # the same after 1 chunk as after 7
    # 19 latents: beyond the temporal tile, so compare with the untiled decoder run on everything.
    assert (torch.cat(outs, dim=2) - _one_shot(ours, latents, causal=True)).abs().max().item() <= 1e-5


def test_causal_streaming_with_spatial_tiles_equals_tiled_decode() -> None:
    ours = _vae(causal=True, tile_sample_min_size=64, tile_sample_stride_size=32)
    latents = _latents(5, seed=5)  # 64 x 96 pixels: 2 x 3 tiles of 64 every 32
    with torch.no_grad():
        tiled = ours.vae.tiled_decode(ours.denormalize(latents), None, causal=True, return_dict=False)[0]
    untiled = _one_shot(ours, latents, causal=True)
    assert (tiled - untiled).abs().max().item() > 1e-3  # the tiles really change the pixels...
    got = torch.cat(_stream(StreamingDecoder(ours), latents, [3, 2]), dim=2)
    assert (got - tiled).abs().max().item() <= 1e-5  # ...and streaming reproduces the tiled decode
    whole = torch.cat(_stream(StreamingDecoder(ours, spatial_tiling=False), latents, [3, 2]), dim=2)
    assert (whole - untiled).abs().max().item() <= 1e-5


def test_failed_call_restores_forwards_and_keeps_state() -> None:
    ours = _vae(causal=True)
    latents = _latents(7, seed=6)
    decoder = StreamingDecoder(ours)
    first = decoder.decode_chunk(latents[:, :, :4])

    def boom(*_: object) -> None:
        raise RuntimeError("boom")

    handle = ours.vae.decoder.conv_out.register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        decoder.decode_chunk(latents[:, :, 4:])
    handle.remove()
    assert _patched_forwards(ours) == []
    second = decoder.decode_chunk(latents[:, :, 4:])  # as if the failed call never happened
    ref = _one_shot(ours, latents, causal=True)
    assert (torch.cat([first, second], dim=2) - ref).abs().max().item() <= 1e-5


def test_uint8_frames_and_blank_frame_guard() -> None:
    ours = _vae(causal=True)
    latents = _latents(7, seed=7)
    decoder = StreamingDecoder(ours, replace_blank=True)
    first = decoder.decode_chunk_uint8(latents[:, :, :4])
    assert first.dtype == np.uint8 and first.shape == (25, 64, 96, 3)
    ref = to_uint8(_one_shot(ours, latents, causal=True)[0]).permute(1, 2, 3, 0).numpy()
    diff = np.abs(first.astype(int) - ref[:25])
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # 1e-6 float noise may cross a rounding edge
    conv_out = ours.vae.decoder.conv_out.conv
    saved = conv_out.weight.detach().clone(), conv_out.bias.detach().clone()
    with torch.no_grad():  # a broken decode: every pixel 0.0, i.e. uniform grey 128
        conv_out.weight.zero_(), conv_out.bias.zero_()
    second = decoder.decode_chunk_uint8(latents[:, :, 4:])
    with torch.no_grad():
        conv_out.weight.copy_(saved[0]), conv_out.bias.copy_(saved[1])
    assert decoder.blank_frames_replaced == 24
    assert np.array_equal(second, np.broadcast_to(first[-1], second.shape))


def test_replace_blank_frames_carries_the_last_good_frame() -> None:
    g = torch.Generator().manual_seed(8)
    frames = torch.randint(0, 256, (5, 4, 6, 3), generator=g, dtype=torch.uint8)
    frames[0] = 0  # blank with no good frame before it: kept
    frames[2] = torch.tensor([10, 20, 30], dtype=torch.uint8)  # one colour everywhere: blank
    out, last, replaced = replace_blank_frames(frames, None)
    assert replaced == 1 and torch.equal(out[2], frames[1]) and torch.equal(out[0], frames[0])
    assert torch.equal(out[[1, 3, 4]], frames[[1, 3, 4]]) and torch.equal(last, frames[4])
    assert frames[2, 0, 0, 0] == 10  # input untouched
    out, last2, replaced = replace_blank_frames(torch.zeros(2, 4, 6, 3, dtype=torch.uint8), last)
    assert replaced == 2 and torch.equal(out, last.expand(2, -1, -1, -1)) and torch.equal(last2, last)


def test_refusals() -> None:
    with pytest.raises(InputError, match="context"):
        StreamingDecoder(_vae(causal=True), context=3)
    with pytest.raises(InputError, match="context"):
        StreamingDecoder(_vae(causal=False), context=0)
    for lookahead in (-1, True, 1.0):
        with pytest.raises(InputError, match="lookahead"):
            StreamingDecoder(_vae(causal=False), lookahead=lookahead)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no latents"):
        StreamingDecoder(_vae(causal=False)).flush()
    noisy = VideoVAE(tiny_ltx2_vae(8, seed=0, decoder_causal=True, decoder_inject_noise=(True,) * 4))
    with pytest.raises(InputError, match="noise"):
        StreamingDecoder(noisy)
    decoder = StreamingDecoder(_vae(causal=True))
    with pytest.raises(InputError, match="channels"):
        decoder.decode_chunk(torch.zeros(1, 4, 2, 2, 3))
    decoder.decode_chunk(_latents(2, seed=9))
    with pytest.raises(InputError, match="differs"):
        decoder.decode_chunk(_latents(2, seed=9, size=(2, 2)))
    with pytest.raises(InputError, match="at least one"):
        decoder.decode_chunk(torch.zeros(1, 8, 0, 2, 3))


def test_receptive_field_is_the_measured_reach_of_one_latent() -> None:
    ours = _vae(causal=False)
    assert receptive_field_latents(ours.vae.decoder) == 6.625
    latents = _latents(16, seed=10)
    bumped = latents.clone()
    bumped[:, :, 8] += 1.0  # latent 8 covers pixel frames 57..64
    changed = (_one_shot(ours, latents) - _one_shot(ours, bumped)).abs().amax(dim=(0, 1, 3, 4)) > 0
    reach = changed.nonzero().flatten()
    assert (57 - reach.min().item(), reach.max().item() - 64) == (53, 53)  # 6.625 latents = 53 pixel frames


def test_non_causal_context_makes_the_left_side_exact() -> None:
    ours = _vae(causal=False)
    latents = _latents(14, seed=11)
    decoder = StreamingDecoder(ours, lookahead=0)
    assert not decoder.exact and decoder.context == 7
    outs = _stream(decoder, latents, [4, 3, 3, 4])
    assert [o.shape[2] for o in outs] == [25, 24, 24, 32]
    assert decoder.state_numel() == 7 * 8 * 2 * 3  # the last `context` latent frames only
    # Each chunk equals the one-shot decode of the video up to its end (last chunk: of the whole video),
    # also the last one, whose window [3, 14) does not start at the video's first latent.
    for end, out in zip([4, 7, 10, 14], outs, strict=True):
        prefix = _one_shot(ours, latents[:, :, :end])
        assert (out - prefix[:, :, prefix.shape[2] - out.shape[2] :]).abs().max().item() <= 1e-5
    # One latent less context than the receptive field: the left edge now leaks into the chunk.
    short = _stream(StreamingDecoder(ours, context=6, lookahead=0), latents, [4, 3, 3, 4])
    assert (short[3] - outs[3]).abs().max().item() > 1e-4
    # Against the one-shot decode, the chunks before the last one lack their right context.
    assert (torch.cat(outs[:3], dim=2) - _one_shot(ours, latents)[:, :, :73]).abs().max().item() > 0.1


@pytest.mark.skipif(not (DEMO_DIR / VAE_SUBFOLDER).is_dir(), reason="bundled demo VAE missing")
def test_demo_vae_streaming_error_is_bounded() -> None:
    """The documented approximation error of the non-causal demo VAE (module docstring of vae_stream)."""
    torch.manual_seed(0)
    ours = VideoVAE.from_pretrained(DEMO_DIR / VAE_SUBFOLDER, subfolder=None, dtype=torch.float32)
    assert receptive_field_latents(ours.vae.decoder) == 10.125
    height, width = 96, 160  # a panning crop of the demo first frame, 73 frames
    image = Image.open(DEMO_DIR / FIRST_FRAME_FILE).convert("RGB").resize((width + 128, height + 80))
    pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1
    frames = [pixels[40 + round(20 * math.sin(i / 10)) :][:height, i : i + width] for i in range(73)]
    latents = ours.encode_video(torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)[None])
    ref = ours.decode(latents)
    decoder = StreamingDecoder(ours, lookahead=0)
    assert decoder.context == 11
    got = torch.cat(_stream(decoder, latents, [4, 3, 3]), dim=2)
    err = (got - ref).abs()
    psnr = 10 * math.log10(4 / err.pow(2).mean().item())
    assert err.max().item() <= 1.5 * 0.607 and psnr >= 36.19 - 2  # measured: 0.607 and 36.19 dB
    assert err[:, :, 49:].max().item() <= 1e-5  # the last chunk ends at the true right edge: exact
    per_frame = err.mean(dim=(0, 1, 3, 4))
    assert per_frame[24] > 5 * per_frame[0]  # the error grows towards a chunk's right edge
    # The default lookahead of one chunk (3 latents): each chunk's frames come one call later, 35 dB better.
    decoder = StreamingDecoder(ours)
    assert decoder.lookahead == DEFAULT_LOOKAHEAD == 3
    outs = [*_stream(decoder, latents, [4, 3, 3]), decoder.flush()]
    assert [o.shape[2] for o in outs] == [1, 24, 24, 24]
    err = (torch.cat(outs, dim=2) - ref).abs()
    psnr = 10 * math.log10(4 / err.pow(2).mean().item())
    assert err.max().item() <= 1.5 * 0.0112 and psnr >= 73.64 - 2  # measured: 0.0112 and 73.64 dB
    assert err[:, :, 49:].max().item() <= 1e-5  # flushed with the true right edge: exact


@pytest.mark.parametrize(
    ("split", "lookahead", "counts"),
    [
        ([4, 3, 3, 4], 3, [1, 24, 24, 32, 24]),
        ([4, 3, 3, 4], 0, [25, 24, 24, 32, 0]),
        ([2, 1, 1, 5, 5], 3, [0, 0, 1, 40, 40, 24]),  # nothing final until a 4th latent arrives
        ([1, 1, 12], 5, [0, 0, 65, 40]),
        ([3, 3], 9, [0, 0, 41]),  # the whole video held back: flush is the one-shot decode
    ],
)
def test_non_causal_lookahead_frame_accounting(split: list[int], lookahead: int, counts: list[int]) -> None:
    ours = _vae(causal=False)
    latents = _latents(sum(split), seed=12)
    ref = _one_shot(ours, latents)
    decoder = StreamingDecoder(ours, lookahead=lookahead)
    assert decoder.context == 7
    outs, consumed = [], 0
    for chunk in torch.split(latents, split, dim=2):
        outs.append(decoder.decode_chunk(chunk))
        consumed += chunk.shape[2]
        assert decoder.held_back == min(lookahead, consumed) and decoder.latent_frames == consumed
        # Bounded state: `context` final latents and the held-back ones, never the whole history.
        assert decoder.state_numel() == min(consumed, 7 + decoder.held_back) * 8 * 2 * 3
        # Left side exact: the returned frames equal the one-shot decode of everything consumed so far.
        prefix = _one_shot(ours, latents[:, :, :consumed])
        done = sum(o.shape[2] for o in outs)
        assert _max_err(outs[-1], prefix[:, :, done - outs[-1].shape[2] : done]) <= 1e-5
    outs.append(decoder.flush())
    assert [o.shape[2] for o in outs] == counts and sum(counts) == ref.shape[2]
    assert all(o.shape[:2] == (1, 3) and o.shape[3:] == (64, 96) for o in outs)
    assert decoder.held_back == 0 and decoder.state_numel() == 0
    tail = outs[-1].shape[2]  # the flushed frames have the true right edge: exact
    assert _max_err(outs[-1], ref[:, :, ref.shape[2] - tail :]) <= 1e-5
    assert decoder.flush().shape[2] == 0  # flushing again: nothing left
    with pytest.raises(InputError, match="flushed"):
        decoder.decode_chunk(latents[:, :, :1])
    decoder.reset()  # a new video
    final = max(0, 4 - lookahead)
    assert decoder.decode_chunk(latents[:, :, :4]).shape[2] == (8 * (final - 1) + 1 if final else 0)


def test_lookahead_of_the_receptive_field_is_exact_and_less_is_better() -> None:
    ours = _vae(causal=False)  # one-sided reach 6.625 latents
    latents = _latents(16, seed=13)
    ref = _one_shot(ours, latents)
    errors = []
    for lookahead in range(8):
        decoder = StreamingDecoder(ours, lookahead=lookahead)
        got = torch.cat([*_stream(decoder, latents, [4, 3, 3, 3, 3]), decoder.flush()], dim=2)
        errors.append((got - ref).abs().max().item())
    assert errors[7] <= 1e-5  # right context complete too
    assert errors[0] > 0.1 and all(a > b for a, b in zip(errors, errors[1:], strict=False))


def test_causal_decoder_refuses_lookahead_and_flushes_nothing() -> None:
    with pytest.raises(InputError, match="lookahead"):
        StreamingDecoder(_vae(causal=True), lookahead=3)
    decoder = StreamingDecoder(_vae(causal=True), lookahead=0)  # 0 is what a causal decoder uses anyway
    assert decoder.lookahead == 0
    assert decoder.decode_chunk(_latents(4, seed=14)).shape[2] == 25 and decoder.held_back == 0
    assert decoder.flush().shape == (1, 3, 0, 64, 96)
    with pytest.raises(InputError, match="flushed"):
        decoder.decode_chunk(_latents(1, seed=14))


def test_non_causal_uint8_flush_and_failed_call() -> None:
    ours = _vae(causal=False)
    latents = _latents(7, seed=15)
    ref = to_uint8(_one_shot(ours, latents)[0]).permute(1, 2, 3, 0).numpy()
    decoder = StreamingDecoder(ours, replace_blank=True)  # lookahead 3
    first = decoder.decode_chunk_uint8(latents[:, :, :2])
    assert first.shape == (0, 64, 96, 3) and first.dtype == np.uint8  # everything held back

    def boom(*_: object) -> None:
        raise RuntimeError("boom")

    handle = ours.vae.decoder.conv_out.register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        decoder.decode_chunk_uint8(latents[:, :, 2:])
    handle.remove()
    assert decoder.held_back == 2 and decoder.latent_frames == 2  # as before the failed call
    second = decoder.decode_chunk_uint8(latents[:, :, 2:])
    third = decoder.flush_uint8()
    assert (second.shape[0], third.shape[0]) == (25, 24)
    got = np.concatenate([first, second, third])
    assert got.shape == ref.shape and np.abs(got.astype(int) - ref).max() <= 20
    assert np.abs(third.astype(int) - ref[25:]).max() <= 1  # flushed: exact up to float rounding
    assert decoder.blank_frames_replaced == 0
