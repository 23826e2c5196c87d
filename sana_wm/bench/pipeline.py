"""Pipeline benchmark: whole stage-1 generations with random-weight components, per-stage time and memory.

Needs no download: Gemma-2 with the gemma-2-2b(-it) architecture, the LTX-2 VAE with the released architecture
and our ``sana_wm_1600m_720p`` transformer are built with random weights directly on the device (tiny
stand-ins from :mod:`sana_wm.tiny` with ``small=True``); the tokenizer is a character-level Gemma tokenizer
built in-process (so token counts differ from the real one; the text encoder still sees 300-token prompts plus
the chi prefix). The numbers measure speed and memory only: the video is noise.

Per length: seconds and peak ``torch.cuda.max_memory_allocated`` of each stage (text encode, VAE encode,
sampling and per step, VAE decode), and the peak memory of the whole device over the generation.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from sana_wm.bench.build import free
from sana_wm.bench.settings import BenchSettings
from sana_wm.bench.timing import DeviceMemoryMonitor
from sana_wm.camera import default_intrinsics
from sana_wm.inference import CameraPath, GenerationRequest, SamplingSettings
from sana_wm.inference.pipeline import Pipeline
from sana_wm.inference.run import generate
from sana_wm.latent_shape import latent_frames
from sana_wm.models import SanaWMConfig, SanaWMTransformer, sana_wm_1600m_720p, tiny
from sana_wm.text_encoder import TextEncoder
from sana_wm.tiny import tiny_gemma2_config, tiny_ltx2_vae, tiny_tokenizer
from sana_wm.vae import VideoVAE

log = logging.getLogger(__name__)

DEFAULT_ACTION = "w-80,jw-40,w-40,lw-60,w-100"
ACTION_FRAMES = 320  # frames the default action string moves for
PROMPT = (
    "A first-person drive along a winding coastal road at golden hour, cliffs on the left, the sea "
    "glittering on the right, long shadows from roadside pines, light haze over distant headlands."
)
TINY_LATENT_CHANNELS = 16

# gemma-2-2b(-it) as released (these are also transformers' Gemma2Config defaults).
GEMMA2_2B = dict(
    vocab_size=256000,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=26,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    query_pre_attn_scalar=256,
    sliding_window=4096,
    attn_logit_softcapping=50.0,
    final_logit_softcapping=30.0,
    max_position_embeddings=8192,
)
# LTX-2 VAE as released (hub Lightricks/LTX-2 vae/config.json, also SANA-WM's vae/).
LTX2_VAE = dict(
    latent_channels=128,
    block_out_channels=(256, 512, 1024, 2048),
    decoder_block_out_channels=(256, 512, 1024),
    layers_per_block=(4, 6, 6, 2, 2),
    decoder_layers_per_block=(5, 5, 5, 5),
    downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_type=("spatiotemporal",) * 3,
    upsample_residual=(True,) * 3,
    upsample_factor=(2, 2, 2),
    patch_size=4,
    patch_size_t=1,
    encoder_causal=True,
    decoder_causal=False,
    decoder_spatial_padding_mode="reflect",
    timestep_conditioning=False,
    scaling_factor=1.0,
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)


def build_pipeline(
    *,
    small: bool,
    device: torch.device,
    dtype: torch.dtype,
    offload: str,
    backend: str = "torch",
    config: SanaWMConfig | None = None,
    vae_overrides: dict[str, Any] | None = None,
) -> Pipeline:
    """Random-weight components built on ``device`` (fast init), then handed to :class:`Pipeline`.

    ``config``: the transformer's architecture (default ``tiny()`` / ``sana_wm_1600m_720p()``);
    ``vae_overrides``: changes to the VAE's config (e.g. ``decoder_causal=True``)."""
    from diffusers import AutoencoderKLLTX2Video
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in the compute dtype, never in float32 first
    try:
        with torch.device(device):
            gemma = Gemma2Model(tiny_gemma2_config() if small else Gemma2Config(**GEMMA2_2B)).eval()
            # seed=None: the tiny VAE continues the RNG stream after Gemma, as the full-size one does.
            overrides = vae_overrides or {}
            vae = (
                tiny_ltx2_vae(TINY_LATENT_CHANNELS, seed=None, **overrides)
                if small
                else AutoencoderKLLTX2Video(**{**LTX2_VAE, **overrides}).eval()
            )
    finally:
        torch.set_default_dtype(default_dtype)
    with torch.device("meta"):
        transformer = SanaWMTransformer(config or (tiny() if small else sana_wm_1600m_720p()))
    transformer = transformer.to(dtype=dtype).to_empty(device=device)
    transformer.init_weights()
    return Pipeline(
        transformer.eval(),
        TextEncoder(gemma, tiny_tokenizer(chi_prompt=True)),
        VideoVAE(vae),
        device=device,
        offload=offload,  # type: ignore[arg-type]
        backend=backend,  # type: ignore[arg-type]
    )


def first_frame(height: int, width: int) -> Image.Image:
    """A smooth synthetic RGB picture (colour ramps and a sine pattern)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 37.0 + y / 23.0)], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def action_for(num_frames: int) -> str:
    """:data:`DEFAULT_ACTION` repeated until it moves for at least ``num_frames − 1`` frames."""
    repeats = max(1, math.ceil((num_frames - 1) / ACTION_FRAMES))
    return ",".join([DEFAULT_ACTION] * repeats)


def run_pipeline_bench(settings: BenchSettings) -> dict[str, Any]:
    """One generation per length of ``settings.frames``; returns the report's body."""
    device = settings.device
    start = time.perf_counter()
    pipe = build_pipeline(
        small=settings.tiny,
        device=device,
        dtype=settings.dtype,
        offload=settings.offload,
        backend=settings.backend,
    )
    build_s = time.perf_counter() - start
    params = {
        "transformer": count_params(pipe.transformer),
        "text_encoder": count_params(pipe.text_encoder.model),
        "vae": count_params(pipe.vae.vae),
    }
    image = first_frame(settings.height, settings.width)
    lengths = []
    for frames in settings.frames:
        log.info("pipeline: %d frames, %d steps", frames, settings.steps)
        lengths.append(_generate(pipe, image, frames, settings))
        free(device)
    return {
        "preset": "tiny" if settings.tiny else "sana_wm_1600m_720p",
        "config": pipe.transformer.config.to_dict(),
        "params": params,
        "offload": pipe.offload,
        "build_random_weights_s": build_s,
        "lengths": lengths,
    }


def _generate(pipe: Pipeline, image: Image.Image, frames: int, settings: BenchSettings) -> dict[str, Any]:
    entry: dict[str, Any] = {"frames": frames, "steps": settings.steps}
    oom = False
    try:
        with DeviceMemoryMonitor(settings.device) as monitor:
            start = time.perf_counter()
            request = GenerationRequest(
                image=image,
                prompt=PROMPT,
                camera=CameraPath.from_action(
                    action_for(frames), intrinsics=default_intrinsics((settings.height, settings.width))
                ),
                sampling=SamplingSettings(
                    num_frames=frames,
                    steps=settings.steps,
                    height=settings.height,
                    width=settings.width,
                    seed=settings.seed,
                ),
            )
            out = generate(pipe, request, progress=False)
            decoded = sum(1 for _ in out.frames)
            total_s = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        oom = True
    if oom:
        free(settings.device)
        entry["result"] = "oom"
        return entry
    # The pipeline snaps the request to 8k + 1 frames within the camera path.
    memory = dict(out.peak_memory_gib)
    entry.update(
        {
            "frames_generated": out.num_frames,
            "latent_frames": latent_frames(out.num_frames),
            "frames_decoded": decoded,
            "timings_s": dict(out.timings),
            "total_s": total_s,
            "peak_allocated_gib": memory,
            "peak_allocated_max_gib": max(memory.values()) if memory else None,
            "peak_device_gib": monitor.peak_gib,
            "device_memory_source": monitor.source,
        }
    )
    return entry
