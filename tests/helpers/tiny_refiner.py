"""Tiny random refiner parts: LTX-2 refiner DiT (width 16, 2 blocks, 8 latent channels), text connectors,
a 2-layer Gemma-3 (width 16, so 3 stacked hidden states), a character tokenizer and a tiny LTX-2 VAE.

Every DiT and connector parameter is overwritten with scaled noise so that no path (zero-initialised
biases, modulation tables) is silently a no-op.
"""

from __future__ import annotations

import torch

from sana_wm import tiny as sana_tiny

CHANNELS = 8
PROMPT = "a red car on a desert road at dusk"
TEXT_LENGTH = 64  # Gemma-3 tokens per prompt in the tests (the release uses 1024)


def tokenizer():
    return sana_tiny.tiny_tokenizer()


def gemma3():
    return sana_tiny.tiny_gemma3(seed=0)


def transformer():
    return sana_tiny.tiny_refiner_transformer(CHANNELS, perturb_seed=10)


def connectors():
    return sana_tiny.tiny_refiner_connectors(perturb_seed=11)


def vae():
    model = sana_tiny.tiny_ltx2_vae(CHANNELS, seed=1, scaling_factor=0.8)
    return sana_tiny.randomize_latent_stats(model, seed=2, mean_scale=0.1)


def latents(frames: int, seed: int = 5, height: int = 2, width: int = 3) -> torch.Tensor:
    return torch.randn(1, CHANNELS, frames, height, width, generator=torch.Generator().manual_seed(seed))


def oracle(parts, *, max_length: int, vae=None):
    """diffusers' ``SanaWMLTX2Refiner`` on the same parts (shift 1 keeps the distilled sigmas as given)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SanaWMLTX2Refiner

    pipe = SanaWMLTX2Refiner(
        transformer=parts.transformer,
        connectors=parts.connectors,
        tokenizer=parts.tokenizer,
        text_encoder=parts.gemma,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_max_sequence_length=max_length,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
