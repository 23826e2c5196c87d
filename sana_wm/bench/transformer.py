"""Transformer benchmark: one forward of our stage-1 DiT (= one denoising step) against the diffusers peer.

Per clip length: seconds per step (median of the timed forwards after the warm-up), tokens per second, peak
memory (allocator and whole device), model FLOPs utilisation (analytic FLOPs of :mod:`sana_wm.bench.flops`
over the time, over the matmul rate measured on the same card in the same run), and the relative error of our
output against the peer's. Optionally our fp32 forward at the smallest length as a reference for both bf16
outputs, and a per-module time breakdown of ours.

Order of work, so that only one model's activations ever occupy the device:

1. the matmul probe;
2. our model built on the device (fp32, bf16-rounded weights); with ``fp32_reference`` its fp32 forward at
   the smallest length;
3. ours cast to the run dtype (and, with ``offload="group"``, moved to the CPU and streamed block by block),
   every length measured, outputs kept on the CPU; then ours is dropped;
4. the peer built on the device from our weights, every length measured;
5. errors computed on the CPU.

A side that runs out of CUDA memory at a length is recorded as ``"oom"`` there; the run goes on.

In fp32 runs our softmax attentions take bf16 q/k/v (``bf16_softmax=True``), because diffusers 0.42.1 does so
in fp32 models: both sides then compute the same function. The fp32 reference keeps fp32 softmax and runs the
``"torch"`` backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from sana_wm.bench.build import (
    build_ours,
    build_peer,
    cast_inputs,
    errors,
    free,
    make_inputs,
    peer_call,
)
from sana_wm.bench.flops import ClipShape, module_flops, transformer_flops
from sana_wm.bench.settings import BenchSettings
from sana_wm.bench.timing import ModuleTimer, Timing, matmul_rate, time_forward
from sana_wm.inference.offload import enable_block_streaming
from sana_wm.latent_shape import latent_frames
from sana_wm.models import SanaWMConfig, SanaWMTransformer, preset

log = logging.getLogger(__name__)

OOM = "oom"
BREAKDOWN_PARTS = ("attn", "cross_attn", "mlp")


def _preset_name(settings: BenchSettings) -> str:
    return "tiny" if settings.tiny else "sana_wm_1600m_720p"


def clip_shape(settings: BenchSettings, frames: int) -> ClipShape:
    height, width = settings.latent_grid
    return ClipShape(settings.batch, latent_frames(frames), height, width, settings.text_len)


def peer_dtype(settings: BenchSettings) -> torch.dtype:
    """The peer's precision: the run's, except fp32 on the CPU (diffusers refuses bf16 camera geometry
    there)."""
    return settings.dtype if settings.device.type == "cuda" else torch.float32


def _inputs(settings: BenchSettings, cfg: SanaWMConfig, frames: int, dtype: torch.dtype) -> dict:
    shape = clip_shape(settings, frames)
    cpu = make_inputs(
        cfg, shape.batch, shape.frames, shape.height, shape.width, settings.seed, text_len=shape.text_len
    )
    return cast_inputs(cpu, settings.device, dtype)


def model_call(model: torch.nn.Module, inputs: dict, kwargs: dict) -> Callable[[], torch.Tensor]:
    """A no-argument call of our model on ``inputs`` with forward keyword arguments ``kwargs``."""
    return lambda: model(**inputs, **kwargs)


def _measure(
    call: Callable[[], torch.Tensor],
    settings: BenchSettings,
    flops: int,
    tokens: int,
    matmul_tflops: float,
    *,
    warmup: int | None = None,
    repeats: int | None = None,
) -> tuple[dict[str, Any] | str, torch.Tensor | None]:
    """Time ``call``, starting from an emptied CUDA cache; return its report (or ``"oom"``) and its output
    (fp32, on the CPU)."""
    device = settings.device
    free(device)
    oom = False
    timing: Timing | None = None
    try:
        timing = time_forward(
            call,
            device,
            warmup=settings.warmup if warmup is None else warmup,
            repeats=settings.repeats if repeats is None else repeats,
        )
    except torch.cuda.OutOfMemoryError:
        oom = True
    if oom or timing is None:
        free(device)  # outside the except block, so the failed call's tensors are gone
        return OOM, None
    output = timing.output.float().cpu()
    seconds = timing.median_s
    tflops = flops / seconds / 1e12
    report = {
        "s_per_step": seconds,
        "s_each": timing.seconds,
        "tokens_per_s": settings.batch * tokens / seconds,
        "tflops": tflops,
        # MFU against a matmul probe means something on a GPU at full size only: the tiny CPU probe is slower
        # per FLOP than the model's own (larger) products, which gave 300-2,000 % "utilisation".
        "mfu": tflops / matmul_tflops if settings.device.type == "cuda" and not settings.tiny else None,
        "peak_allocated_gib": timing.peak_allocated_gib,
        "peak_reserved_gib": timing.peak_reserved_gib,
        "peak_device_gib": timing.peak_device_gib,
        "device_memory_source": timing.device_memory_source,
    }
    del timing
    free(device)
    return report, output


def module_breakdown(
    model: SanaWMTransformer, call: Callable[[], torch.Tensor], device: torch.device, flops: dict
) -> dict[str, Any] | str:
    """One extra forward with CUDA events (``perf_counter`` on the CPU) around every block's ``attn``,
    ``cross_attn`` and ``mlp``, summed over the GDN blocks and over the softmax blocks, with the achieved
    TFLOP/s of each; ``rest_ms`` is the forward's time outside them (embedders, modulation, ``plucker_proj``,
    final layer, waiting for streamed weights)."""
    timer = ModuleTimer(device)
    for index, block in enumerate(model.blocks):
        kind = "softmax" if model.config.is_softmax_block(index) else "gdn"
        for part in BREAKDOWN_PARTS:
            timer.watch(getattr(block, part), f"{kind}.{part}")
    oom = False
    try:
        with torch.no_grad():
            start = time.perf_counter()
            with timer.recording():
                call()
            total_ms = 1e3 * (time.perf_counter() - start)
        totals = timer.totals_ms()
    except torch.cuda.OutOfMemoryError:
        oom = True
    finally:
        timer.close()
    if oom:
        free(device)
        return OOM
    out: dict[str, Any] = {}
    for kind in ("gdn", "softmax"):
        part_flops = module_flops(flops, kind)
        out[kind] = {}
        for part in BREAKDOWN_PARTS:
            ms = totals.get(f"{kind}.{part}", 0.0)
            rate = part_flops[part] / (ms / 1e3) / 1e12 if ms > 0 else None
            out[kind][part] = {"ms": ms, "tflops": rate}
    out["total_ms"] = total_ms
    out["rest_ms"] = total_ms - sum(totals.values())
    free(device)
    return out


def _fp32_reference(
    ours: SanaWMTransformer, settings: BenchSettings, cfg: SanaWMConfig, frames: int, rate: float
) -> tuple[dict[str, Any], torch.Tensor | None]:
    shape = clip_shape(settings, frames)
    inputs = _inputs(settings, cfg, frames, torch.float32)
    # The reference is the plain PyTorch path in fp32, whatever backend is being benchmarked.
    kwargs = {**settings.forward_kwargs, "backend": "torch", "bf16_softmax": False}
    report, output = _measure(
        model_call(ours, inputs, kwargs),
        settings,
        transformer_flops(cfg, shape)["total"],
        shape.tokens,
        rate,
        warmup=0,
        repeats=1,
    )
    del inputs
    free(settings.device)
    return {"frames": frames, "ours_fp32": report}, output


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool | None) else repr(v) for k, v in kwargs.items()}


def run_transformer_bench(settings: BenchSettings) -> dict[str, Any]:
    """Measure every length of ``settings.frames`` (see the module docstring); returns the report's body."""
    device, dtype = settings.device, settings.dtype
    cfg = preset(_preset_name(settings))
    log.info("matmul probe: %d³ %s", settings.matmul_size, dtype)
    rate = matmul_rate(device, dtype, settings.matmul_size)
    log.info("matmul rate: %.1f TFLOP/s", rate)

    lengths: list[dict[str, Any]] = []
    for frames in settings.frames:
        shape = clip_shape(settings, frames)
        lengths.append(
            {
                "frames": frames,
                "latent_frames": shape.frames,
                "tokens_per_sample": shape.tokens,
                "flops": transformer_flops(cfg, shape),
            }
        )

    ours = build_ours(cfg, device, settings.seed)
    parameters = sum(p.numel() for p in ours.parameters())
    reference, reference_out = None, None
    smallest = min(settings.frames)
    if settings.fp32_reference:
        log.info("ours fp32 reference at %d frames", smallest)
        reference, reference_out = _fp32_reference(ours, settings, cfg, smallest, rate)

    ours.to(dtype)
    peer_state = None
    if settings.peer:
        peer_state = {k: v.detach().to("cpu", copy=True) for k, v in ours.state_dict().items()}
    if settings.offload == "group":
        ours.to("cpu")
        free(device)
        enable_block_streaming(ours, device)
    ours_kwargs = {**settings.forward_kwargs, "bf16_softmax": dtype == torch.float32}

    outputs: dict[str, dict[int, torch.Tensor | None]] = {"ours": {}, "peer": {}}
    for entry in lengths:
        frames = entry["frames"]
        log.info("ours: %d frames", frames)
        inputs = _inputs(settings, cfg, frames, dtype)

        call = model_call(ours, inputs, ours_kwargs)
        entry["ours"], outputs["ours"][frames] = _measure(
            call, settings, entry["flops"]["total"], entry["tokens_per_sample"], rate
        )
        if settings.breakdown:
            entry["ours_breakdown"] = (
                OOM if entry["ours"] == OOM else module_breakdown(ours, call, device, entry["flops"])
            )
        del inputs, call
        free(device)
    del ours
    free(device)

    if peer_state is not None:
        p_dtype = peer_dtype(settings)
        peer = build_peer(cfg, peer_state, device, p_dtype)
        del peer_state
        for entry in lengths:
            frames = entry["frames"]
            log.info("peer: %d frames", frames)
            inputs = _inputs(settings, cfg, frames, p_dtype)
            entry["peer"], outputs["peer"][frames] = _measure(
                peer_call(peer, inputs), settings, entry["flops"]["total"], entry["tokens_per_sample"], rate
            )
            del inputs
            free(device)
        del peer
        free(device)

    for entry in lengths:
        frames = entry["frames"]
        ours_out, peer_out = outputs["ours"].get(frames), outputs["peer"].get(frames)
        if ours_out is not None and peer_out is not None:
            entry["ours_vs_peer"] = errors(ours_out, peer_out)
        if isinstance(entry.get("ours"), dict) and isinstance(entry.get("peer"), dict):
            entry["peer_over_ours"] = entry["peer"]["s_per_step"] / entry["ours"]["s_per_step"]
    if reference is not None and reference_out is not None:
        for side in ("ours", "peer"):
            out = outputs[side].get(smallest)
            if out is not None:
                reference[f"{side}_vs_fp32"] = errors(out, reference_out)

    return {
        "preset": _preset_name(settings),
        "config": cfg.to_dict(),
        "parameters": parameters,
        "peer_dtype": str(peer_dtype(settings)).removeprefix("torch.") if settings.peer else None,
        "ours_forward_kwargs": _jsonable(ours_kwargs),
        "matmul_tflops": rate,
        "lengths": lengths,
        "fp32_reference": reference,
    }
