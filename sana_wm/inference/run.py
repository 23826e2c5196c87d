"""The entry point every caller shares: :func:`load` a model from its :class:`ModelSource`, then
:func:`generate` a :class:`GenerationRequest` with it (``sana-wm generate``, ``demo``, ``eval-world`` and
``bench --mode pipeline`` all go through these two)."""

from __future__ import annotations

import logging

import torch

from sana_wm.errors import InputError
from sana_wm.inference.pipeline import GenerationOutput, Pipeline
from sana_wm.inference.request import GenerationRequest, RuntimeSettings
from sana_wm.inference.source import ModelSource
from sana_wm.utils.device import resolve_device, resolve_dtype

log = logging.getLogger(__name__)


def resolve_backend(backend: str, device: torch.device, *, demo: bool) -> str | None:
    """``"auto"``: the fastest ops here (for the demo model its own choice, None); ``"triton"`` needs CUDA."""
    from sana_wm.ops import fastest_backend

    if backend == "auto":
        return None if demo else fastest_backend(device)
    if backend == "triton" and device.type != "cuda":
        raise InputError("--backend triton: the kernels need a CUDA device (use auto or torch here)")
    return backend


def load(source: ModelSource, runtime: RuntimeSettings | None = None, *, refiner: bool = False) -> Pipeline:
    """The stage-1 pipeline of ``source`` on ``runtime``'s device; with ``refiner`` (release only) the
    refiner's folders are looked up too, so that anything missing of either stage is reported together
    before any weight is loaded (:class:`~sana_wm.inference.weights.MissingWeightsError`)."""
    runtime = runtime or RuntimeSettings()
    device = resolve_device(runtime.device)
    dtype = resolve_dtype(runtime.dtype, device)
    backend = resolve_backend(runtime.backend, device, demo=source.is_demo)
    if source.demo_dir is not None:
        from sana_wm.inference.demo_model import load_demo_pipeline

        pipe = load_demo_pipeline(device, directory=source.demo_dir, dtype=dtype, backend=backend)
        return quantize(apply_lora(pipe, runtime), runtime.quantize)
    from sana_wm.inference.pipeline import load_pipeline

    pipe = load_pipeline(
        source.model_path,
        config=source.config,
        vae_path=source.vae_path,
        text_encoder_path=source.text_encoder_path,
        device=device,
        dtype=dtype,
        offload=runtime.offload,
        backend=backend or "torch",
        refiner=refiner,
        refiner_checkpoint=source.refiner_checkpoint,
        refiner_gemma_root=source.refiner_gemma_root,
    )
    return quantize(apply_lora(pipe, runtime), runtime.quantize)


def apply_lora(pipe: Pipeline, runtime: RuntimeSettings) -> Pipeline:
    """``--lora FILE [--lora_scale S]``: the adapter merged into the stage-1 transformer's weights, in place
    (:func:`sana_wm.models.lora.merge_adapter`); a plain transformer afterwards, as fast as the base."""
    if runtime.lora is not None:
        from sana_wm.models.lora import merge_adapter

        names = merge_adapter(pipe.transformer, runtime.lora, scale=runtime.lora_scale)
        log.info("lora: merged %s into %d layers (scale %g)", runtime.lora, len(names), runtime.lora_scale)
    return pipe


def quantize(pipe: Pipeline, mode: str) -> Pipeline:
    """``--quantize``: with ``"fp8"``, the stage-1 transformer's large projections stored in fp8, in place."""
    if mode == "fp8":
        from sana_wm.models.quant import quantize_fp8_

        report = quantize_fp8_(pipe.transformer)
        log.info(
            "fp8: %d modules, %.2f B parameters; transformer %.2f -> %.2f GB",
            report.modules, report.params / 1e9, report.bytes_before / 1e9, report.bytes_after / 1e9,
        )  # fmt: skip
    return pipe


def generate(pipe: Pipeline, request: GenerationRequest, *, progress: bool = True) -> GenerationOutput:
    """Stage 1, then the refiner when ``request.refiner`` is set: frames decode lazily when iterated."""
    if request.refiner is None:
        return pipe(request, progress=progress)
    from sana_wm.inference.two_stage import generate_two_stage

    return generate_two_stage(pipe, request, progress=progress)
