"""Tiny random SANA-WM components for the pipeline tests, and small helpers.

Sizes: Gemma-2 of width 64 (= the transformer's caption channels), an LTX-2 VAE with 16 latent channels and
the real 8 x 32 x 32 compression, and diffusers' ``SanaWMTransformer3DModel`` at width 224 (head dim 112,
blocks GDN, GDN, GDN, softmax) with every parameter perturbed, loaded strictly into ours. The stage-2
refiner is :mod:`helpers.tiny_refiner`'s with 16 latent channels (the stage-1 VAE's), saved in the release
layout.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from sana_wm import tiny as sana_tiny

HEIGHT, WIDTH = 64, 96
IMAGE_HW = (100, 160)
INTRINSICS = [100.0, 100.0, 80.0, 50.0]  # pixels of the 160 x 100 source image: 77 x 53 deg FOV
PROMPT = "a red car on a desert road"


def tiny_tokenizer():
    """Character-level Gemma tokenizer (BOS added) over printable ASCII and the chi prompt's characters."""
    return sana_tiny.tiny_tokenizer(chi_prompt=True)


def tiny_gemma(hidden_size: int = 64):
    return sana_tiny.tiny_gemma2(hidden_size, seed=0)


def tiny_vae():
    vae = sana_tiny.tiny_ltx2_vae(16, seed=1, scaling_factor=0.9)
    return sana_tiny.randomize_latent_stats(vae, seed=2, mean_scale=0.1)


def tiny_oracle():
    """diffusers' transformer with every parameter overwritten, so that no path is a silent zero."""
    return sana_tiny.tiny_sana_wm_oracle(seed=3, perturb_seed=1234)


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
    from diffusers import LTX2VideoTransformer3DModel

    from helpers import tiny_refiner

    folder = root / "refiner"
    config = dict(tiny_refiner.transformer().config)
    transformer = LTX2VideoTransformer3DModel.from_config({**config, "in_channels": 16, "out_channels": 16})
    sana_tiny.perturb_refiner_parameters(transformer, 10)
    transformer.save_pretrained(folder / "transformer")
    tiny_refiner.connectors().save_pretrained(folder / "connectors")
    tiny_refiner.gemma3().save_pretrained(folder / "text_encoder")
    tiny_refiner.tokenizer().save_pretrained(folder / "text_encoder")
    return folder


def make_pipeline(tiny):
    from sana_wm.inference.pipeline import Pipeline
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


class EmptyFrames:
    """A streaming decoder that decodes nothing: as many empty frames as the chunk would give (the first
    chunk 8·T − 7, later ones 8·T), for tests that compare latents."""

    first = True

    def decode_chunk_uint8(self, latents):  # noqa: ANN001, ANN201
        count, self.first = 8 * latents.shape[2] - 7 * self.first, False
        return np.zeros((count, 1, 1, 3), np.uint8)

    def flush_uint8(self):  # noqa: ANN201
        return np.zeros((0, 1, 1, 3), np.uint8)
