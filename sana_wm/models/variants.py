"""Named model sizes: the official release, its streaming student and a tiny one for tests."""

from __future__ import annotations

from collections.abc import Callable

from sana_wm.errors import InputError
from sana_wm.models.config import SanaWMConfig


def sana_wm_1600m_720p() -> SanaWMConfig:
    """The official release: 2,661,800,448 parameters, 20 blocks (width 2240), softmax in 3, 7, 11, 15, 19."""
    return SanaWMConfig()


def sana_wm_streaming_1600m_720p() -> SanaWMConfig:
    """The streaming student (``SanaMSVideoCamCtrlStreaming_1600M_P1_D20``, ``SANA-WM_streaming``): the
    release architecture, chunk-causal with chunks of 3 latent frames (the first one 3 + 1)."""
    return SanaWMConfig(chunk_size=3, chunk_strategy="first_plus_one")


def tiny() -> SanaWMConfig:
    """Four blocks (GDN, GDN, GDN, softmax) of width 224 with two 112-wide heads; a few million parameters."""
    return SanaWMConfig(
        in_channels=16,
        hidden_size=224,
        depth=4,
        head_dim=112,
        cross_attn_heads=2,
        caption_channels=64,
        plucker_blocks=4,
    )


PRESETS: dict[str, Callable[[], SanaWMConfig]] = {
    "sana_wm_1600m_720p": sana_wm_1600m_720p,
    "sana_wm_streaming_1600m_720p": sana_wm_streaming_1600m_720p,
    "tiny": tiny,
}


def preset(name: str) -> SanaWMConfig:
    """The config of a named preset; unknown names are an :class:`InputError`."""
    if name not in PRESETS:
        raise InputError(f"preset: {name!r} is not one of {', '.join(PRESETS)}")
    return PRESETS[name]()
