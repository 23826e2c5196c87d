"""Stage 1 then the stage-2 refiner: SANA-WM's default output (``sana-wm generate`` without ``--no_refiner``).

:func:`generate_two_stage` runs stage 1 (:class:`~.pipeline.Pipeline`, F = 8k + 1 frames) and then
:func:`refine`, which, in order (timing keys in brackets):

1. frees the GPU of the stage-1 transformer and Gemma-2 (:meth:`Pipeline.release_models`), so the peak GPU
   memory is that of the larger stage, not of both;
2. loads the refiner from its folders with the pipeline's VAE, device, dtype and offload mode
   [``refiner_load``];
3. encodes the prompt (Gemma-3 + connectors) and drops Gemma-3 [``refine_text``];
4. refines the stage-1 latents (:class:`~.refiner.Refiner`) [``refine``], then drops the refiner;
5. decodes the refined latents lazily without their first pixel frame (the sink anchor): F - 1 frames, whose
   poses and intrinsics are those of stage-1 frames 1 .. F - 1 (``c2w[1:F]``,
   :func:`sana_wm.inference.refiner.align_to_refined`).

The refined latents are exactly what the refiner library gives for the stage-1 latents: nothing here
changes the numbers, only the order in which models occupy the GPU.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import AbstractContextManager

import torch

from sana_wm.inference.pipeline import GenerationOutput, Pipeline
from sana_wm.inference.refiner import Refiner, align_to_refined, decode_refined, refined_num_frames
from sana_wm.inference.request import GenerationRequest, RefinerSettings
from sana_wm.inference.weights import RefinerPaths
from sana_wm.utils.timing import timed_stage

log = logging.getLogger(__name__)


def generate_two_stage(
    pipeline: Pipeline,
    request: GenerationRequest,
    *,
    refiner: Refiner | RefinerPaths | None = None,
    progress: bool = True,
) -> GenerationOutput:
    """Stage 1 of ``request`` and then :func:`refine` with ``request.refiner`` (default settings when None):
    the refined video of F - 1 frames; ``.stage1`` is stage 1's result."""
    if refiner is None and pipeline.refiner_weights is None:
        raise ValueError("refine: no refiner given and the pipeline was not loaded with refiner=True")
    if request.refiner is None:  # the default settings, checked against the frame count like any others
        request = dataclasses.replace(request, refiner=RefinerSettings())
    first = pipeline(request, progress=progress)
    return refine(
        pipeline,
        first,
        request.prompt,
        refiner=refiner,
        settings=request.refiner,
        fps=request.fps,
        progress=progress,
    )


def refine(
    pipeline: Pipeline,
    stage1: GenerationOutput,
    prompt: str,
    *,
    refiner: Refiner | RefinerPaths | None = None,
    settings: RefinerSettings | None = None,
    fps: float = 16.0,
    progress: bool = True,
) -> GenerationOutput:
    """Refine a stage-1 result of ``pipeline``; the returned frames decode lazily with the pipeline's VAE.

    Args:
        pipeline: the pipeline that made ``stage1`` (its VAE decodes the refined latents); its transformer
            and Gemma-2 leave the GPU first (:meth:`Pipeline.release_models`).
        stage1: the stage-1 result (F frames).
        prompt: the same prompt, encoded again by the refiner's Gemma-3.
        refiner: the refiner's folders (loaded here with the pipeline's VAE, device, dtype and offload mode;
            Gemma-3 is dropped once the prompt is encoded and the whole refiner when it is done), a loaded
            :class:`Refiner` (used as it is and kept intact), or None for ``pipeline.refiner_weights``
            (``load_pipeline(..., refiner=True)``).
        settings: mode, sink, block and window sizes, seed, fp8.
        fps: frame rate of the video (the refiner's temporal positions are in seconds).
        progress: a tqdm bar over the refiner's steps, and over decoding.

    Returns:
        F - 1 frames, ``c2w[1:F]``, ``intrinsics[1:F]``, the refined latents (CPU, model dtype), stage 1's
        timings plus ``refiner_load``, ``refine_text`` and ``refine``, and ``stage1``.
    """
    settings = settings or RefinerSettings()
    if refiner is None:
        refiner = pipeline.refiner_weights
    if refiner is None:
        raise ValueError("refine: no refiner given and the pipeline was not loaded with refiner=True")
    timings = {k: v for k, v in stage1.timings.items() if k != "decode"}
    memory = {k: v for k, v in stage1.peak_memory_gib.items() if k != "decode"}

    def stage(name: str) -> AbstractContextManager[None]:
        return timed_stage(name, device=pipeline.device, timings=timings, memory=memory)

    pipeline.release_models()
    owned = isinstance(refiner, RefinerPaths)
    if owned:
        with stage("refiner_load"):
            refiner = Refiner.from_paths(
                refiner,
                device=pipeline.device,
                dtype=pipeline.dtype,
                offload=pipeline.offload,
                fp8=settings.fp8,
            )
    with stage("refine_text"):
        text = refiner.encode_prompt(prompt)
        if owned:
            refiner.release_text_encoder()
    with stage("refine"):
        refined = refiner(
            stage1.latents,
            text,
            mode=settings.mode,
            sink_size=settings.sink_size,
            block_size=settings.block_size,
            kv_max_frames=settings.kv_max_frames,
            seed=settings.seed,
            fps=fps,
            progress=progress,
        ).to("cpu")
    if owned:
        del refiner, text
        if pipeline.device.type == "cuda":
            torch.cuda.empty_cache()

    num_frames = refined_num_frames(stage1.num_frames)
    frames = pipeline.lazy_frames(
        refined, num_frames, timings=timings, memory=memory, progress=progress, decode=decode_refined
    )
    return dataclasses.replace(
        stage1,
        frames=frames,
        c2w=align_to_refined(stage1.c2w),
        intrinsics=align_to_refined(stage1.intrinsics),
        latents=refined,
        num_frames=num_frames,
        timings=timings,
        peak_memory_gib=memory,
        stage1=stage1,
    )
