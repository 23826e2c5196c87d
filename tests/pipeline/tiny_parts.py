"""Tiny random SANA-WM components for the pipeline tests, and small helpers.

Sizes: Gemma-2 of width 64 (= the transformer's caption channels), an LTX-2 VAE with 16 latent channels and
the real 8 x 32 x 32 compression, and diffusers' ``SanaWMTransformer3DModel`` at width 224 (head dim 112,
blocks GDN, GDN, GDN, softmax) with every parameter perturbed, loaded strictly into ours. The stage-2
refiner is tests/refiner's tiny one with 16 latent channels (the stage-1 VAE's), saved in the release layout.
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

HEIGHT, WIDTH = 64, 96
IMAGE_HW = (100, 160)
INTRINSICS = [100.0, 100.0, 80.0, 50.0]  # pixels of the 160 x 100 source image: 77 x 53 deg FOV
PROMPT = "a red car on a desert road"


def tiny_tokenizer():
    """Character-level Gemma tokenizer (BOS added) over printable ASCII and the chi prompt's characters."""
    from transformers import GemmaTokenizer

    from sana_wm.text_encoder import CHI_PROMPT

    chars = sorted(set(string.printable.replace(" ", "▁")) | set("".join(CHI_PROMPT).replace(" ", "▁")))
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *chars])}
    return GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=True)


def tiny_gemma(hidden_size: int = 64):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=160,
        hidden_size=hidden_size,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
    )
    return Gemma2ForCausalLM(config).eval()


def tiny_vae():
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(1)
    vae = AutoencoderKLLTX2Video(
        latent_channels=16,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(16, 32, 64),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        patch_size=4,
        decoder_causal=False,
        decoder_spatial_padding_mode="zeros",
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
        scaling_factor=0.9,
    ).eval()
    gen = torch.Generator().manual_seed(2)
    vae.latents_mean.copy_(0.1 * torch.randn(16, generator=gen))
    vae.latents_std.copy_(torch.rand(16, generator=gen) + 0.5)
    return vae


def tiny_oracle():
    """diffusers' transformer with every parameter overwritten, so that no path is a silent zero."""
    from diffusers import SanaWMTransformer3DModel

    torch.manual_seed(3)
    oracle = SanaWMTransformer3DModel(
        in_channels=16,
        num_layers=4,
        hidden_size=224,
        num_attention_heads=2,
        linear_head_dim=112,
        caption_channels=64,
        chunk_plucker_post_attn_blocks=4,
    ).eval()
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, param in oracle.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if param.ndim == 1 and "norm" in name:
                param.copy_(1.0 + 0.1 * noise)
            elif name.endswith(("A_log", "dt_bias")):
                param.copy_(0.5 * noise)
            else:
                fan_in = param[0].numel() if param.ndim > 1 else param.numel()
                param.copy_(noise / math.sqrt(fan_in))
    return oracle


def source_image(height: int = IMAGE_HW[0], width: int = IMAGE_HW[1], seed: int = 0) -> Image.Image:
    """A smooth colour field with some texture (random images make the VAE's job meaningless)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 7.0 + y / 11.0)], axis=-1)
    rgb = rgb * 200 + rng.integers(0, 40, size=rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def save_tiny_refiner(root: Path) -> Path:
    """The tiny refiner in the release layout ``root/refiner/{transformer,connectors,text_encoder}``.

    The transformer is saved as diffusers' ``LTX2VideoTransformer3DModel`` (audio stream included), the
    class the release stores.
    """
    import tiny_refiner
    from diffusers import LTX2VideoTransformer3DModel

    folder = root / "refiner"
    config = dict(tiny_refiner.transformer().config)
    transformer = LTX2VideoTransformer3DModel.from_config({**config, "in_channels": 16, "out_channels": 16})
    tiny_refiner._perturb(transformer, 10)
    transformer.save_pretrained(folder / "transformer")
    tiny_refiner.connectors().save_pretrained(folder / "connectors")
    tiny_refiner.gemma3().save_pretrained(folder / "text_encoder")
    tiny_refiner.tokenizer().save_pretrained(folder / "text_encoder")
    return folder


def make_pipeline(tiny):
    from sana_wm.pipeline import Pipeline
    from sana_wm.text_encoder import TextEncoder
    from sana_wm.vae import VideoVAE

    return Pipeline(tiny.ours, TextEncoder(tiny.gemma, tiny.tokenizer), VideoVAE(tiny.vae), device="cpu")


def weight_args(dirs: SimpleNamespace) -> list[str]:
    return [
        "--model_path",
        str(dirs.model),
        "--vae_path",
        str(dirs.vae),
        "--text_encoder_path",
        str(dirs.text_encoder),
    ]


def refiner_args(refiner_dir: Path) -> list[str]:
    return [
        "--refiner_checkpoint",
        str(refiner_dir),
        "--refiner_gemma_root",
        str(refiner_dir / "text_encoder"),
    ]


def save_png(path: Path, image: Image.Image) -> str:
    image.save(path)
    return str(path)


def block_means(video_FHW3: np.ndarray, k: int = 8) -> np.ndarray:
    """Mean of every ``k`` x ``k`` pixel block of every frame and channel: what H.264 keeps of pixel noise."""
    f, h, w, c = video_FHW3.shape
    return video_FHW3.astype(np.float64).reshape(f, h // k, k, w // k, k, c).mean(axis=(2, 4))


def frame_correlations(a_FHW3: np.ndarray, b_FHW3: np.ndarray) -> np.ndarray:
    """Pearson correlation of every frame of ``a`` with every frame of ``b``: (F, F)."""
    a = a_FHW3.reshape(len(a_FHW3), -1).astype(np.float64)
    b = b_FHW3.reshape(len(b_FHW3), -1).astype(np.float64)
    a = (a - a.mean(1, keepdims=True)) / np.linalg.norm(a - a.mean(1, keepdims=True), axis=1, keepdims=True)
    b = (b - b.mean(1, keepdims=True)) / np.linalg.norm(b - b.mean(1, keepdims=True), axis=1, keepdims=True)
    return a @ b.T
