"""The VAE's compression and the latent shape it gives a clip: defined here once, used everywhere.

LTX-2's video VAE is causal in time: the first pixel frame becomes latent frame 0 on its own, every further
``time`` pixel frames one more latent frame, so a clip of ``F = time * k + 1`` pixel frames has ``k + 1``
latent frames; space is compressed ``height`` x ``width`` (32 x 32). Shape letters: docs/conventions.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VaeStride:
    """Pixels per latent cell along (time, height, width)."""

    time: int = 8
    height: int = 32
    width: int = 32

    @property
    def thw(self) -> tuple[int, int, int]:
        return (self.time, self.height, self.width)

    @classmethod
    def of(cls, vae: object) -> VaeStride:
        """The stride of a diffusers LTX-2 VAE (its ``temporal_`` / ``spatial_compression_ratio``)."""
        spatial = int(vae.spatial_compression_ratio)  # type: ignore[attr-defined]
        return cls(int(vae.temporal_compression_ratio), spatial, spatial)  # type: ignore[attr-defined]


LTX2_STRIDE = VaeStride()


def latent_frames(num_frames: int, stride: int = LTX2_STRIDE.time) -> int:
    """Latent frames of ``num_frames`` pixel frames: ``(F - 1) // stride + 1``."""
    return (num_frames - 1) // stride + 1


def pixel_frames(num_latent_frames: int, stride: int = LTX2_STRIDE.time) -> int:
    """Pixel frames that ``num_latent_frames`` latent frames decode to: ``stride * (T - 1) + 1``."""
    return stride * (num_latent_frames - 1) + 1


@dataclass(frozen=True)
class LatentShape:
    """``(C, T, h, w)`` of one clip's latents."""

    channels: int
    frames: int
    height: int
    width: int

    @classmethod
    def of_video(
        cls, num_frames: int, height: int, width: int, channels: int, stride: VaeStride = LTX2_STRIDE
    ) -> LatentShape:
        """The latents of ``num_frames`` pixel frames of ``height`` x ``width`` (multiples of the stride)."""
        return cls(
            channels, latent_frames(num_frames, stride.time), height // stride.height, width // stride.width
        )

    @property
    def tokens(self) -> int:
        """Tokens per sample at patch size 1: ``T * h * w``."""
        return self.frames * self.height * self.width

    def batch(self, size: int = 1) -> tuple[int, int, int, int, int]:
        """``(B, C, T, h, w)``."""
        return (size, self.channels, self.frames, self.height, self.width)
