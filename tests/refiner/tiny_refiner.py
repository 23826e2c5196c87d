"""Tiny random refiner parts: LTX-2 refiner DiT (width 16, 2 blocks, 8 latent channels), text connectors,
a 2-layer Gemma-3 (width 16, so 3 stacked hidden states), a character tokenizer and a tiny LTX-2 VAE.

Every DiT and connector parameter is overwritten with scaled noise so that no path (zero-initialised
biases, modulation tables) is silently a no-op.
"""

from __future__ import annotations

import math
import string

import torch

CHANNELS = 8
PROMPT = "a red car on a desert road at dusk"
TEXT_LENGTH = 64  # Gemma-3 tokens per prompt in the tests (the release uses 1024)


def tokenizer():
    from transformers import GemmaTokenizer

    chars = sorted(set(string.printable.replace(" ", "▁")))
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *chars])}
    return GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=True)


def gemma3():
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    torch.manual_seed(0)
    text = Gemma3TextConfig(
        vocab_size=120,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
    )
    vision = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    return Gemma3ForConditionalGeneration(config).eval()


def _perturb(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim == 1 and "norm" in name:
                param.copy_(1.0 + 0.1 * noise)
            elif "scale_shift_table" in name or "registers" in name:
                param.copy_(0.3 * noise)
            else:
                fan_in = param[0].numel() if param.ndim > 1 else param.numel()
                param.copy_(noise / math.sqrt(fan_in))


def transformer():
    from diffusers import SanaWMLTX2RefinerTransformer3DModel

    model = SanaWMLTX2RefinerTransformer3DModel(
        in_channels=CHANNELS,
        out_channels=CHANNELS,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=16,
        num_layers=2,
        audio_in_channels=8,
        audio_out_channels=8,
        audio_num_attention_heads=2,
        audio_attention_head_dim=8,
        audio_cross_attention_dim=16,
    ).eval()
    _perturb(model, 10)
    return model


def connectors():
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    model = LTX2TextConnectors(
        caption_channels=16,
        text_proj_in_factor=3,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=8,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=8,
        connector_rope_base_seq_len=64,
    ).eval()
    _perturb(model, 11)
    return model


def vae():
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(1)
    model = AutoencoderKLLTX2Video(
        latent_channels=CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(16, 32, 64),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        patch_size=4,
        decoder_causal=False,
        decoder_spatial_padding_mode="zeros",
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
        scaling_factor=0.8,
    ).eval()
    gen = torch.Generator().manual_seed(2)
    model.latents_mean.copy_(0.1 * torch.randn(CHANNELS, generator=gen))
    model.latents_std.copy_(torch.rand(CHANNELS, generator=gen) + 0.5)
    return model


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
