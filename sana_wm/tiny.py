"""Tiny random components for tests and CPU smoke runs; never used for real generation.

One source for the small stand-ins of every external part: an LTX-2 VAE with the real 8 x 32 x 32
compression, Gemma-2 and Gemma-3 of width 64 / 16, a character-level Gemma tokenizer, diffusers' SANA-WM
transformer at width 224, and the LTX-2 refiner DiT and text connectors at width 16. The builders seed the
global RNG exactly where the call sites used to (``seed=None`` leaves it alone), so outputs built through them
are bit-identical to the former inline copies. ``diffusers`` and ``transformers`` are imported inside the
builders: importing this module costs nothing.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import (
        AutoencoderKLLTX2Video,
        SanaWMLTX2RefinerTransformer3DModel,
        SanaWMTransformer3DModel,
    )
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        Gemma3ForConditionalGeneration,
        Gemma3TextConfig,
        GemmaTokenizer,
    )

# diffusers ``AutoencoderKLLTX2Video`` keyword arguments (latent_channels and scaling_factor come separately).
LTX2_VAE: dict[str, Any] = dict(
    block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(16, 32, 64),
    layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1),
    patch_size=4,
    decoder_causal=False,
    decoder_spatial_padding_mode="zeros",
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)
# ``Gemma2Config`` keyword arguments (hidden_size comes separately).
GEMMA2: dict[str, Any] = dict(
    vocab_size=160,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
)
# ``Gemma3TextConfig`` keyword arguments: 2 layers, so 3 stacked hidden states for the refiner.
GEMMA3_TEXT: dict[str, Any] = dict(
    vocab_size=120,
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=8,
)
# diffusers ``SanaWMTransformer3DModel``: width 224, head dim 112, blocks GDN, GDN, GDN, softmax.
SANA_WM_TRANSFORMER: dict[str, Any] = dict(
    in_channels=16,
    num_layers=4,
    hidden_size=224,
    num_attention_heads=2,
    linear_head_dim=112,
    caption_channels=64,
    chunk_plucker_post_attn_blocks=4,
)
# diffusers ``SanaWMLTX2RefinerTransformer3DModel`` (in/out channels come separately); every kind of module of
# the LTX-2 release is kept, audio stream included.
REFINER_TRANSFORMER: dict[str, Any] = dict(
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
)
# diffusers ``LTX2TextConnectors``.
REFINER_CONNECTORS: dict[str, Any] = dict(
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
)


def _seed(seed: int | None) -> None:
    if seed is not None:
        torch.manual_seed(seed)


def tiny_ltx2_vae(
    latent_channels: int = 8, *, seed: int | None = 0, **overrides: Any
) -> AutoencoderKLLTX2Video:
    """diffusers' LTX-2 VAE with :data:`LTX2_VAE` (``overrides`` win), in eval mode, global RNG seeded first.

    Latent statistics stay at diffusers' defaults (mean 0, std 1); see :func:`randomize_latent_stats`.
    """
    from diffusers import AutoencoderKLLTX2Video

    _seed(seed)
    return AutoencoderKLLTX2Video(**{"latent_channels": latent_channels, **LTX2_VAE, **overrides}).eval()


def randomize_latent_stats(
    vae: AutoencoderKLLTX2Video, seed: int, *, mean_scale: float = 1.0
) -> AutoencoderKLLTX2Video:
    """Overwrite the per-channel latent mean (``mean_scale`` x N(0, 1)) and std (U(0.5, 1.5)) in place.

    Both are drawn from one generator seeded with ``seed``, mean first. Returns ``vae``.
    """
    channels = vae.config.latent_channels
    gen = torch.Generator().manual_seed(seed)
    vae.latents_mean.copy_(mean_scale * torch.randn(channels, generator=gen))
    vae.latents_std.copy_(torch.rand(channels, generator=gen) + 0.5)
    return vae


def tiny_tokenizer(*, chi_prompt: bool = False) -> GemmaTokenizer:
    """Character-level Gemma tokenizer (BOS added) over printable ASCII, spaces as "▁".

    ``chi_prompt`` adds the characters of :data:`sana_wm.text_encoder.CHI_PROMPT` (for the stage-1 encoder).
    Ids 0-4 are ``<pad> <eos> <bos> <unk> <mask>``, then the sorted characters.
    """
    from transformers import GemmaTokenizer

    extra = ""
    if chi_prompt:
        from sana_wm.text_encoder import CHI_PROMPT

        extra = "".join(CHI_PROMPT)
    chars = sorted(set(string.printable.replace(" ", "▁")) | set(extra.replace(" ", "▁")))
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *chars])}
    return GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=True)


def tiny_gemma2_config(hidden_size: int = 64) -> Gemma2Config:
    """:data:`GEMMA2` (vocabulary 160, 2 layers) of width ``hidden_size``."""
    from transformers import Gemma2Config

    return Gemma2Config(hidden_size=hidden_size, **GEMMA2)


def tiny_gemma2(hidden_size: int = 64, *, seed: int | None = 0) -> Gemma2ForCausalLM:
    """Random ``Gemma2ForCausalLM`` of :func:`tiny_gemma2_config`, in eval mode, global RNG seeded first."""
    from transformers import Gemma2ForCausalLM

    _seed(seed)
    return Gemma2ForCausalLM(tiny_gemma2_config(hidden_size)).eval()


def tiny_gemma3_text_config() -> Gemma3TextConfig:
    """:data:`GEMMA3_TEXT`: Gemma-3's text stack, width 16, 2 layers."""
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(**GEMMA3_TEXT)


def tiny_gemma3(*, seed: int | None = 0) -> Gemma3ForConditionalGeneration:
    """Random ``Gemma3ForConditionalGeneration``: :func:`tiny_gemma3_text_config`, a 1-layer SigLIP tower."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    _seed(seed)
    vision = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = Gemma3Config(text_config=tiny_gemma3_text_config(), vision_config=vision, mm_tokens_per_image=4)
    return Gemma3ForConditionalGeneration(config).eval()


def _perturb(
    module: torch.nn.Module, seed: int, is_special: Callable[[str], bool], special_scale: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim == 1 and "norm" in name:
                param.copy_(1.0 + 0.1 * noise)
            elif is_special(name):
                param.copy_(special_scale * noise)
            else:
                fan_in = param[0].numel() if param.ndim > 1 else param.numel()
                param.copy_(noise / math.sqrt(fan_in))


def perturb_dit_parameters(module: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter of a SANA-WM DiT (zero-initialised ones included) with scaled noise.

    1-D norm weights 1 + 0.1 N(0, 1); GDN ``A_log`` / ``dt_bias`` 0.5 N(0, 1); the rest N(0, 1 / fan_in).
    Drawn in ``named_parameters`` order from one generator seeded with ``seed``.
    """
    _perturb(module, seed, lambda name: name.endswith(("A_log", "dt_bias")), 0.5)


def perturb_refiner_parameters(module: torch.nn.Module, seed: int) -> None:
    """As :func:`perturb_dit_parameters` for the LTX-2 refiner parts, with modulation tables and registers
    (``scale_shift_table``, ``registers`` anywhere in the name) at 0.3 N(0, 1)."""
    _perturb(module, seed, lambda name: "scale_shift_table" in name or "registers" in name, 0.3)


def tiny_sana_wm_oracle(*, seed: int, perturb_seed: int = 1234) -> SanaWMTransformer3DModel:
    """diffusers' SANA-WM transformer of :data:`SANA_WM_TRANSFORMER`, every parameter perturbed, eval mode."""
    from diffusers import SanaWMTransformer3DModel

    torch.manual_seed(seed)
    oracle = SanaWMTransformer3DModel(**SANA_WM_TRANSFORMER).eval()
    perturb_dit_parameters(oracle, perturb_seed)
    return oracle


def tiny_refiner_transformer(
    channels: int = 8, *, perturb_seed: int | None = 10
) -> SanaWMLTX2RefinerTransformer3DModel:
    """The LTX-2 refiner DiT of :data:`REFINER_TRANSFORMER` with ``channels`` latent channels, eval mode.

    ``perturb_seed=None`` skips :func:`perturb_refiner_parameters` (e.g. when built on ``meta``).
    """
    from diffusers import SanaWMLTX2RefinerTransformer3DModel

    model = SanaWMLTX2RefinerTransformer3DModel(
        in_channels=channels, out_channels=channels, **REFINER_TRANSFORMER
    ).eval()
    if perturb_seed is not None:
        perturb_refiner_parameters(model, perturb_seed)
    return model


def tiny_refiner_connectors(*, perturb_seed: int | None = 11) -> LTX2TextConnectors:
    """LTX-2 text connectors of :data:`REFINER_CONNECTORS`, eval mode; ``perturb_seed`` as for the DiT."""
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    model = LTX2TextConnectors(**REFINER_CONNECTORS).eval()
    if perturb_seed is not None:
        perturb_refiner_parameters(model, perturb_seed)
    return model
