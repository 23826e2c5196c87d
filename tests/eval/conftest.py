"""A tiny random SANA-WM pipeline: tests/pipeline's Gemma-2, tokenizer and LTX-2 VAE, a smaller DiT."""

from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_pipeline():
    """Width 32, one GDN and one softmax block, every parameter random (no silent zero path), so the
    camera input changes the video. 16 latent channels and 64 caption channels match the tiny VAE / Gemma."""
    from helpers.tiny_parts import tiny_gemma, tiny_tokenizer, tiny_vae

    from sana_wm.inference.pipeline import Pipeline
    from sana_wm.models import SanaWMConfig, SanaWMTransformer
    from sana_wm.text_encoder import TextEncoder
    from sana_wm.vae import VideoVAE

    config = SanaWMConfig(
        in_channels=16,
        hidden_size=32,
        depth=2,
        head_dim=16,
        cross_attn_heads=2,
        caption_channels=64,
        mlp_ratio=2.0,
        softmax_every_n=2,
        plucker_blocks=2,
    )
    torch.manual_seed(0)
    transformer = SanaWMTransformer(config).eval()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim == 1 and "norm" in name:
                param.copy_(1.0 + 0.1 * noise)
            else:
                fan_in = param[0].numel() if param.ndim > 1 else param.numel()
                param.copy_(noise / math.sqrt(fan_in))
    return Pipeline(
        transformer, TextEncoder(tiny_gemma(), tiny_tokenizer()), VideoVAE(tiny_vae()), device="cpu"
    )


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every evaluation test runs on one thread (``one_thread`` in tests/conftest.py)."""
