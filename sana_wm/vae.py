"""LTX-2 video VAE wrapper: the one place generation code uses diffusers' VAE.

Layouts: pixels ``video_B3FHW`` / ``image_B3HW`` in [-1, 1]; latents ``latents_BCThw`` with
``F = 8 (T - 1) + 1``, ``H = 32 h``, ``W = 32 w`` (the first latent frame covers one pixel frame, every later
one covers eight).

Latent normalisation (per channel, buffers ``latents_mean`` / ``latents_std`` stored in the checkpoint):
``z_n = (z - mean) * scaling_factor / std`` after encoding and the inverse before decoding; the DiT only
ever sees ``z_n``. Encoding takes the posterior mode (no sampling); decoding uses no timestep (no
decode-time noise).

Memory: like the official pipeline, decoding is frame-wise (temporal tiles of 96 pixel frames every 64,
cross-faded over 32) with spatial tiling (512 px tiles every 448 px, cross-faded over 64); the decoder's
working memory is then bounded by one tile, whatever the video length.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from diffusers import AutoencoderKLLTX2Video
from diffusers.models.autoencoders import autoencoder_kl_ltx2 as _ltx2

from sana_wm.errors import InputError
from sana_wm.latent_shape import LTX2_STRIDE, VaeStride

LATENT_STRIDE_THW: tuple[int, int, int] = LTX2_STRIDE.thw

# The decoder layers that couple frames in time; sana_wm.vae_stream carries their state across latent chunks.
CausalConv3d = _ltx2.LTX2VideoCausalConv3d
Upsampler3d = _ltx2.LTX2VideoUpsampler3d


class VideoVAE:
    """Encode first frames / videos to normalised latents and decode latents back to pixels.

    The tile arguments configure diffusers' temporal ("frame-wise") and spatial tiling, in pixel units;
    defaults are the official SANA-WM settings.
    """

    def __init__(
        self,
        vae: AutoencoderKLLTX2Video,
        *,
        tile_sample_min_num_frames: int = 96,
        tile_sample_stride_num_frames: int = 64,
        tile_sample_min_size: int = 512,
        tile_sample_stride_size: int = 448,
    ) -> None:
        strides = VaeStride.of(vae).thw
        if strides != LATENT_STRIDE_THW:
            # diffusers derives 16/64 from the block layout when the config leaves the ratios unset.
            raise ValueError(f"VAE compression (T, H, W) must be {LATENT_STRIDE_THW}, got {strides}")
        self.vae = vae
        vae.enable_tiling(
            tile_sample_min_height=tile_sample_min_size,
            tile_sample_min_width=tile_sample_min_size,
            tile_sample_min_num_frames=tile_sample_min_num_frames,
            tile_sample_stride_height=tile_sample_stride_size,
            tile_sample_stride_width=tile_sample_stride_size,
            tile_sample_stride_num_frames=tile_sample_stride_num_frames,
        )
        vae.use_framewise_encoding = True
        vae.use_framewise_decoding = True

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
        local_files_only: bool = False,
        subfolder: str | None = "vae",
    ) -> VideoVAE:
        """Load ``AutoencoderKLLTX2Video`` weights from a local folder or Hub repo (``<path>/vae/``)."""
        try:
            vae = AutoencoderKLLTX2Video.from_pretrained(
                str(path),
                subfolder=subfolder,
                torch_dtype=dtype,
                local_files_only=local_files_only,
                use_safetensors=True,  # never a pickle .bin
            )
        except (OSError, ValueError) as err:  # a missing or torn file; a broken config.json (ValueError)
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(f"vae {str(path)!r}: {first_line[:200]}") from None
        return cls(vae.to(device).eval())

    @property
    def device(self) -> torch.device:
        return self.vae.device

    @property
    def dtype(self) -> torch.dtype:
        return self.vae.dtype

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        mean = self.vae.latents_mean.view(1, -1, 1, 1, 1).to(like)
        std = self.vae.latents_std.view(1, -1, 1, 1, 1).to(like)
        return mean, std, float(self.vae.config.scaling_factor)

    def normalize(self, z_BCThw: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents to DiT latents: ``(z - mean) * scaling_factor / std``, in the dtype of ``z``."""
        mean, std, scale = self._stats(z_BCThw)
        return (z_BCThw - mean) * scale / std

    def denormalize(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        """DiT latents to raw VAE latents: ``z_n / scaling_factor * std + mean``, in the input's dtype."""
        mean, std, scale = self._stats(latents_BCThw)
        return latents_BCThw / scale * std + mean

    @torch.no_grad()
    def encode_video(self, video_B3FHW: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] -> normalised latents ``(B, C, k+1, H/32, W/32)``.

        Needs ``F = 8k + 1`` frames and ``H, W`` multiples of 32. Computed and returned in the VAE's dtype.
        """
        if video_B3FHW.ndim != 5 or video_B3FHW.shape[1] != 3:
            raise InputError(f"video: expected shape (B, 3, F, H, W), got {tuple(video_B3FHW.shape)}")
        _, _, frames, height, width = video_B3FHW.shape
        st, sh, sw = LATENT_STRIDE_THW
        if (frames - 1) % st or height % sh or width % sw:
            raise InputError(
                f"video: frames must be 8k+1 and height/width multiples of 32, got {frames}x{height}x{width}"
            )
        pixels = video_B3FHW.to(self.device, dtype=self.dtype)
        return self.normalize(self.vae.encode(pixels).latent_dist.mode())

    def encode_image(self, image_B3HW: torch.Tensor) -> torch.Tensor:
        """First-frame latent: image in [-1, 1] ``(B, 3, H, W)`` -> normalised ``(B, C, 1, H/32, W/32)``."""
        if image_B3HW.ndim != 4 or image_B3HW.shape[1] != 3:
            raise InputError(f"image: expected shape (B, 3, H, W), got {tuple(image_B3HW.shape)}")
        height, width = image_B3HW.shape[2:]
        if height % LATENT_STRIDE_THW[1] or width % LATENT_STRIDE_THW[2]:
            raise InputError(f"image: height and width must be multiples of 32, got {height}x{width}")
        return self.encode_video(image_B3HW.unsqueeze(2))

    @torch.no_grad()
    def decode(self, latents_BCThw: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> video ``(B, 3, 8(T-1)+1, 32h, 32w)`` in the VAE dtype.

        Nominally in [-1, 1] but not clamped (clamping belongs to the conversion to pixels).
        """
        z = self.denormalize(latents_BCThw.to(self.device, dtype=self.dtype))
        return self.vae.decode(z, return_dict=False)[0]

    @torch.no_grad()
    def decode_frames_uint8(self, latents_1CThw: torch.Tensor) -> Iterator[np.ndarray]:
        """Decode one video and yield its frames as ``(H, W, 3)`` uint8 arrays, in order, as they are done.

        Same pixels as :meth:`decode` followed by :func:`to_uint8`. When frame-wise decoding applies, the
        temporal tiles are decoded one after another and each tile's frames are yielded once its cross-fade
        with the previous tile is done, so at most two decoded tiles are alive at a time (instead of the
        whole video).
        """
        if latents_1CThw.ndim != 5 or latents_1CThw.shape[0] != 1:
            raise InputError(f"latents: expected shape (1, C, T, h, w), got {tuple(latents_1CThw.shape)}")
        z = self.denormalize(latents_1CThw.to(self.device, dtype=self.dtype))
        for tile_B3FHW in self._decode_tiles(z):
            yield from to_uint8(tile_B3FHW[0]).permute(1, 2, 3, 0).cpu().numpy()

    def _decode_tiles(self, z_1CThw: torch.Tensor) -> Iterator[torch.Tensor]:
        # Frame-wise decoding as diffusers does it (AutoencoderKLLTX2Video._temporal_tiled_decode), one tile
        # at a time: tile i decodes latent frames [i*s, i*s + m + 1), drops its last pixel frame unless it is
        # the first tile, cross-fades its first (M - S) pixel frames with the tail of the previous tile, and
        # contributes S pixel frames (S + 1 for the first tile). M, S: tile length and stride in pixel frames.
        vae = self.vae
        st = vae.temporal_compression_ratio
        tile_frames, stride_frames = vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames
        m, s = tile_frames // st, stride_frames // st
        num_latent = z_1CThw.shape[2]
        if not (vae.use_framewise_decoding and num_latent > m):
            yield vae.decode(z_1CThw, return_dict=False)[0]
            return
        num_pixel = (num_latent - 1) * st + 1
        spatial = vae.use_tiling and (
            z_1CThw.shape[-1] > vae.tile_sample_min_width // vae.spatial_compression_ratio
            or z_1CThw.shape[-2] > vae.tile_sample_min_height // vae.spatial_compression_ratio
        )
        previous, emitted = None, 0
        for start in range(0, num_latent, s):
            chunk = z_1CThw[:, :, start : start + m + 1]
            if spatial:
                tile = vae.tiled_decode(chunk, None, return_dict=False)[0]
            else:
                tile = vae.decoder(chunk, None)
            if previous is None:
                out = tile[:, :, : stride_frames + 1]
            else:
                tile = tile[:, :, :-1]
                blend = min(previous.shape[2], tile.shape[2], tile_frames - stride_frames)
                for k in range(blend):
                    w = k / blend
                    tile[:, :, k] = previous[:, :, k - blend] * (1 - w) + tile[:, :, k] * w
                out = tile[:, :, :stride_frames]
            out = out[:, :, : num_pixel - emitted]
            emitted += out.shape[2]
            previous = tile
            yield out


def to_uint8(video_3FHW: torch.Tensor) -> torch.Tensor:
    """[-1, 1] pixels to uint8 ``round(255 * clamp(x/2 + 0.5, 0, 1))``, computed in float32.

    This is diffusers' conversion for PIL output (``VideoProcessor``, output_type "pil"); the official
    SANA-WM script truncates ``clamp(127.5 x + 127.5)`` instead, which is up to one level darker.
    """
    return ((video_3FHW.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
