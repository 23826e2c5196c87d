"""Streaming benchmark: a streamed generation with random-weight full-size components, per chunk.

The chunk-causal transformer (``sana_wm_streaming_1600m_720p``: the release architecture, chunks of 3 latent
frames), the causal LTX-2 VAE (the released architecture with ``decoder_causal=True``, as the streaming
release's ``ltx2_causal_vae``) and Gemma-2 are built with random weights on the device (tiny stand-ins with
``--tiny``); the sampler is the student's (4 Euler steps + the cache-write pass per chunk, no guidance). The
video is noise: only time and memory mean anything.

Per length and variant (``stage1``: sampling only, steady-state forwards replayed as CUDA graphs on a GPU;
``stage1_eager``: the same without graphs; ``decode``: sampling + causal decode to uint8 frames on
the host; ``refiner``: plus the chunk-causal refiner, LTX-2's video stream with random weights (13.0 B
parameters) and a random 256-token prompt, sink 1, blocks of 3, history 10 frames; ``refiner_fp8``: the same
with its weights stored as float8 e4m3, as ``--refiner_fp8``): seconds of every chunk
(ready to ready), first-chunk latency (from the start of sampling, after prompt and image encoding), the
steady state (median chunk time from the third chunk on), the real-time factor (1.5 s of video per 24-frame
chunk / steady chunk time), peak allocated memory of the streaming phase after each chunk (to show it does not
grow), the peak of the setup before it (prompt with Gemma-2 visiting the GPU, first-frame encoding) and the
device's peak over both (NVML).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from typing import Any

import numpy as np
import torch

from sana_wm.bench.build import free
from sana_wm.bench.pipeline import (
    PROMPT,
    TINY_LATENT_CHANNELS,
    action_for,
    build_pipeline,
    first_frame,
)
from sana_wm.bench.settings import STREAM_VARIANTS, BenchSettings
from sana_wm.bench.timing import DeviceMemoryMonitor
from sana_wm.camera import action_to_c2w, default_intrinsics
from sana_wm.inference.pipeline import Pipeline
from sana_wm.inference.streaming import StreamSession, StreamSettings, snap_stream_frames
from sana_wm.models import tiny
from sana_wm.models.variants import sana_wm_streaming_1600m_720p

log = logging.getLogger(__name__)

VARIANTS = STREAM_VARIANTS
REFINER_PROMPT_TOKENS = 256
SECONDS_PER_CHUNK = 24 / 16  # 24 pixel frames at 16 fps


class _NoDecode:
    """Stands in for the decoder in the ``stage1`` variant: no frames."""

    def decode_chunk_uint8(self, latents: torch.Tensor) -> np.ndarray:
        return np.zeros((0, 1, 1, 3), np.uint8)

    def flush_uint8(self) -> np.ndarray:
        return np.zeros((0, 1, 1, 3), np.uint8)


def build_stream_pipeline(settings: BenchSettings) -> Pipeline:
    """The pipeline of :func:`~sana_wm.bench.pipeline.build_pipeline` with a chunk-causal transformer and a
    causal VAE decoder (random weights)."""
    config = dataclasses.replace(tiny(), chunk_size=3) if settings.tiny else sana_wm_streaming_1600m_720p()
    return build_pipeline(
        small=settings.tiny,
        device=settings.device,
        dtype=settings.dtype,
        offload="none",
        backend=settings.backend,
        config=config,
        vae_overrides={"decoder_causal": True},
    )


def build_refiner(settings: BenchSettings) -> tuple[Any, Any]:
    """The refiner DiT (video only) with random weights (LTX-2's architecture, or the tiny stand-in) and a
    random encoded prompt of :data:`REFINER_PROMPT_TOKENS` tokens."""
    from diffusers import SanaWMLTX2RefinerTransformer3DModel

    from sana_wm.bench.build import materialize
    from sana_wm.inference.refiner import video_only
    from sana_wm.inference.refiner_stream import RefinerPrompt
    from sana_wm.tiny import tiny_refiner_transformer

    with torch.device("meta"):
        model = (
            tiny_refiner_transformer(TINY_LATENT_CHANNELS, perturb_seed=None)
            if settings.tiny
            else SanaWMLTX2RefinerTransformer3DModel()
        )
    transformer = materialize(video_only(model), settings.device, settings.dtype, seed=0)
    gen = torch.Generator(settings.device).manual_seed(3)
    width = transformer.config.caption_channels
    embeds = torch.randn(
        1, REFINER_PROMPT_TOKENS, width, generator=gen, device=settings.device, dtype=settings.dtype
    )
    mask = torch.ones(1, REFINER_PROMPT_TOKENS, dtype=torch.int64, device=settings.device)
    return transformer, RefinerPrompt(embeds, mask)


def run_stream_bench(settings: BenchSettings) -> dict[str, Any]:
    """One streamed generation per length and variant; returns the report's body."""
    start = time.perf_counter()
    pipe = build_stream_pipeline(settings)
    build_s = time.perf_counter() - start
    lengths = []
    refiner: tuple[Any, Any] | None = None
    for variant in settings.variants or VARIANTS:
        if variant == "refiner":
            try:
                refiner = build_refiner(settings)
            except torch.cuda.OutOfMemoryError:
                lengths.append({"frames": settings.frames[0], "variant": variant, "result": "oom building"})
                break
        if variant == "refiner_fp8":
            if refiner is None:
                refiner = build_refiner(settings)
            refiner[0].enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=settings.dtype
            )
            free(settings.device)
        for frames in settings.frames:
            log.info("stream: %d frames, %s", frames, variant)
            lengths.append(_stream(pipe, frames, variant, settings, refiner))
            free(settings.device)
    return {
        "preset": "tiny" if settings.tiny else "sana_wm_streaming_1600m_720p",
        "config": pipe.transformer.config.to_dict(),
        "build_random_weights_s": build_s,
        "lengths": lengths,
    }


def _stream(
    pipe: Pipeline, frames: int, variant: str, settings: BenchSettings, refiner: tuple[Any, Any] | None
) -> dict[str, Any]:
    frames = snap_stream_frames(frames)
    size = (settings.height, settings.width)
    c2w = action_to_c2w(action_for(frames))[:frames]
    stream_settings = StreamSettings(
        height=size[0], width=size[1], seed=settings.seed, cuda_graphs=variant != "stage1_eager"
    )
    cuda = settings.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(settings.device)
    entry: dict[str, Any] = {"frames": frames, "variant": variant}
    refine = None
    if variant.startswith("refiner"):
        from sana_wm.inference.refiner_stream import RefinerStream
        from sana_wm.inference.streaming import refiner_stage

        assert refiner is not None
        refine = refiner_stage(
            RefinerStream(refiner[0], refiner[1], seed=settings.seed, device=settings.device)
        )
    with DeviceMemoryMonitor(settings.device) as monitor:
        session = StreamSession.create(
            pipe,
            first_frame(*size),
            PROMPT,
            c2w,
            default_intrinsics(size),
            frames,
            stream_settings,
            decoder=_NoDecode() if variant.startswith("stage1") else None,
            refiner=refine,
        )
        if cuda:
            torch.cuda.synchronize(settings.device)
            setup_peak = torch.cuda.max_memory_allocated(settings.device) / 2**30
            torch.cuda.reset_peak_memory_stats(settings.device)  # from here: the streaming phase alone
        begin = time.perf_counter()
        ready, peaks, decoded = [], [], 0
        for chunk in session:
            ready.append(time.perf_counter() - begin)
            decoded += chunk.frames.shape[0]
            if cuda:
                peaks.append(torch.cuda.max_memory_allocated(settings.device) / 2**30)
    per_chunk = np.diff([0.0, *ready]).tolist()
    steady = statistics.median(per_chunk[2:]) if len(per_chunk) > 2 else per_chunk[-1]
    entry.update(
        {
            "chunks": len(per_chunk),
            "frames_decoded": decoded,
            "first_chunk_s": ready[0],
            "steady_chunk_s": steady,
            "realtime_factor": SECONDS_PER_CHUNK / steady,
            "total_s": ready[-1],
            "chunk_s": per_chunk,
            "peak_allocated_gib_after_chunk": peaks,
            "peak_allocated_gib": max(peaks) if peaks else None,
            "peak_setup_allocated_gib": setup_peak if cuda else None,
            "peak_device_gib": monitor.peak_gib,
            "device_memory_source": monitor.source,
            "cache_bytes": session.cache.nbytes() if session.cache is not None else None,
            "cuda_graphs": None
            if session.graphs is None
            else {
                "eager": session.graphs.eager,
                "recorded": session.graphs.recorded,
                "replayed": session.graphs.replayed,
                "disabled": session.graphs.disabled,
            },
        }
    )
    return entry
